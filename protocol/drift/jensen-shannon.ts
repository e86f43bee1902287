/**
 * Jensen–Shannon distance (the square root of the JS divergence) between two distributions over
 * the same bins, in base 2 so it lies in [0, 1]: 0 = identical, 1 = disjoint supports.
 *
 * JSD = ½ KL(p ‖ m) + ½ KL(q ‖ m), m = (p + q)/2. Unlike PSI it needs no epsilon: m > 0 wherever
 * p or q is, and 0·log 0 = 0. Base 2 follows NannyML; Evidently calls scipy with the natural log,
 * whose range is [0, √ln2 ≈ 0.833], so Evidently's 0.1 equals 0.1/√ln2 ≈ 0.12 here (DRIFT.md).
 *
 * @example
 * jensenShannonDistance([1, 0], [0, 1]) // 1
 * jensenShannonDistance([5, 5], [5, 5]) // 0
 */
import { proportions } from './counts.ts';

export function jensenShannonDistance(reference: readonly number[], current: readonly number[]): number {
  const { p, q, n, m } = proportions(reference, current);
  if (n === 0 || m === 0) return NaN;
  let js = 0;
  for (let i = 0; i < p.length; i++) {
    const mid = (p[i] + q[i]) / 2;
    if (p[i] > 0) js += 0.5 * p[i] * Math.log2(p[i] / mid);
    if (q[i] > 0) js += 0.5 * q[i] * Math.log2(q[i] / mid);
  }
  // Rounding can leave a tiny negative or a value a hair above 1.
  return Math.sqrt(Math.min(1, Math.max(0, js)));
}
