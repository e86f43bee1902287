/**
 * Seeded randomness for the built-in trainers and synthetic datasets: the same seed gives the same
 * data, the same initial weights, the same batch order and therefore the same model bytes.
 *
 * The generators are the ones `protocol/` already uses for its simulations (mulberry32 and
 * Box–Muller), re-exported so there is one implementation; `Rng` adds the few helpers training needs.
 *
 * @example
 * const rng = new Rng(7);
 * rng.uniform(-1, 1); rng.normal(0, 0.1); rng.int(10); rng.shuffle(indices);
 */
import { gaussian, mulberry32 } from '../../protocol/sketch/random.ts';

export { gaussian, mulberry32 };

export class Rng {
  /** Uniform in [0, 1). */
  readonly next: () => number;
  private readonly std: () => number;

  constructor(seed: number) {
    this.next = mulberry32(seed);
    this.std = gaussian(this.next);
  }

  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.next();
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Normal draw N(mean, sd²). */
  normal(mean = 0, sd = 1): number {
    return mean + sd * this.std();
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** Fisher–Yates shuffle in place; returns its argument. */
  shuffle<T extends { length: number; [i: number]: any }>(items: T): T {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
    return items;
  }

  /** A derived seed, so sub-streams (data, init, batches) stay independent of each other's draw counts. */
  fork(): number {
    return Math.floor(this.next() * 0x100000000) >>> 0;
  }
}

/** 0, 1, …, n-1 as an Int32Array (batch orders, splits). */
export function range(n: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
}
