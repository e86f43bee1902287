/**
 * Small seeded pseudo-random generators, so statistical tests, benchmarks and demo data are
 * reproducible without a dependency. Not for cryptography.
 *
 * @example
 * const rng = mulberry32(42);
 * rng();                    // uniform in [0, 1)
 * const normal = gaussian(rng);
 * normal() * 2 + 10;        // N(10, 2²)
 */

/** mulberry32 (Tommy Ettinger): 32-bit state, full period 2^32, good enough for simulation tests. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal draws from `rng` by the Box–Muller transform (both values of each pair used). */
export function gaussian(rng: () => number): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = rng(); // log(0) would be -Infinity
    const v = rng();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}
