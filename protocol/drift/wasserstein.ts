/**
 * Wasserstein-1 (earth mover's) distance between two numeric sketches on the same edges, plus the
 * "normed" variant Evidently uses as its large-reference default: W1 / max(σ_ref, 0.001), with σ_ref
 * the reference population standard deviation (exact, from the sketch's moments). Normed, it reads
 * in reference standard deviations, so a threshold of 0.1 means "the distribution moved by about
 * a tenth of its usual spread", regardless of the feature's unit.
 *
 * Binned data: each bin's mass is one atom, by default at the bin's centroid (its exact mean,
 * `sums[i] / bins[i]`, which the sketch carries). `placement: 'midpoint'` puts interior bins at
 * their midpoints instead and closes the open-ended bins with the sketch's own exact extremes:
 * underflow at the midpoint of [min, e₀], overflow at the midpoint of [e_last, max]. Midpoints are
 * the textbook choice but quantile bins are wide in the tails, and there the midpoint is far from
 * where the mass is: measured on 10,000-sample pairs, the normed distance came out 17 % high for a
 * 0.5 σ shift and 90 % high for a lognormal; centroids stayed within 0.005 (DRIFT.md, tests).
 * W1 = ∫ |F_ref(x) − F_cur(x)| dx over the two resulting step CDFs, exact for those atoms; mass
 * moving within one bin is only seen through the shift of that bin's centroid.
 *
 * @example
 * const { distance, normed } = wassersteinBinned(refSketch, curSketch);
 */
import type { NumericSketch } from '../sketch/numeric-sketch.ts';
import { numericStd } from '../sketch/numeric-sketch.ts';

/** Evidently's floor on the normalising standard deviation (a constant reference feature). */
export const WASSERSTEIN_MIN_NORM = 0.001;

export type AtomPlacement = 'centroid' | 'midpoint';

/**
 * Atom positions of a sketch's bins (see the module comment); `null` for bins that are empty.
 *
 * @example
 * binPositions(sketch, 'midpoint') // [underflow, …interior midpoints, overflow]
 */
export function binPositions(s: NumericSketch, placement: AtomPlacement = 'centroid'): Array<number | null> {
  const e = s.edges;
  const E = e.length;
  return s.bins.map((c, i) => {
    if (c === 0) return null;
    if (placement === 'centroid') return s.sums[i] / c;
    if (i === 0) return ((s.min ?? e[0]) + e[0]) / 2;
    if (i === E) return (e[E - 1] + (s.max ?? e[E - 1])) / 2;
    return (e[i - 1] + e[i]) / 2;
  });
}

/**
 * W1 between two discrete distributions given as (position, weight) atoms; weights need not be normalised.
 *
 * @example
 * wasserstein1Discrete([[0, 1]], [[3, 1]]) // 3
 */
export function wasserstein1Discrete(a: ReadonlyArray<readonly [number, number]>, b: ReadonlyArray<readonly [number, number]>): number {
  const wa = a.reduce((s, [, w]) => s + w, 0);
  const wb = b.reduce((s, [, w]) => s + w, 0);
  if (wa <= 0 || wb <= 0) return NaN;
  const events: Array<[number, number]> = [];
  for (const [x, w] of a) events.push([x, w / wa]);
  for (const [x, w] of b) events.push([x, -w / wb]);
  events.sort((u, v) => u[0] - v[0]);
  let diff = 0; // F_a − F_b just right of the current position
  let total = 0;
  for (let i = 0; i < events.length; i++) {
    diff += events[i][1];
    if (i + 1 < events.length) total += Math.abs(diff) * (events[i + 1][0] - events[i][0]);
  }
  return total;
}

export interface WassersteinResult {
  /** W1 in the feature's unit. */
  distance: number;
  /** W1 / max(σ_ref, 0.001). */
  normed: number;
}

/**
 * Binned W1 and normed W1 between a reference and a current sketch (NaN when either is empty).
 *
 * @example
 * wassersteinBinned(ref, cur).normed >= 0.1 // Evidently's default drift rule
 */
export function wassersteinBinned(reference: NumericSketch, current: NumericSketch, placement: AtomPlacement = 'centroid'): WassersteinResult {
  const atoms = (s: NumericSketch) => {
    const pos = binPositions(s, placement);
    const out: Array<[number, number]> = [];
    pos.forEach((x, i) => {
      if (x !== null) out.push([x, s.bins[i]]);
    });
    return out;
  };
  const distance = wasserstein1Discrete(atoms(reference), atoms(current));
  return { distance, normed: distance / Math.max(numericStd(reference), WASSERSTEIN_MIN_NORM) };
}
