/**
 * Population Stability Index between a reference and a current distribution over the same bins:
 * PSI = Σ (qᵢ − pᵢ) · ln(qᵢ / pᵢ), with p, q the bin proportions.
 *
 * An empty bin would make the log infinite, so a proportion of exactly 0 is replaced by
 * `epsilon` (default 1e-4 = 0.01 %, Evidently's value) on that side only. Bins empty on both
 * sides then contribute 0; a bin that only the current window fills (e.g. overflow) contributes
 * (q − ε)·ln(q/ε), which is what makes new territory visible. Reading (industry convention, also
 * Evidently's): < 0.1 stable, 0.1–0.25 moderate, > 0.25 major shift. Returns NaN if either side
 * is empty.
 *
 * @example
 * psi([50, 50], [50, 50])  // 0
 * psi([50, 50], [90, 10])  // ≈ 0.879
 */
import { proportions } from './counts.ts';

/** Default replacement for an empty bin's proportion. */
export const PSI_EPSILON = 1e-4;

export function psi(reference: readonly number[], current: readonly number[], epsilon: number = PSI_EPSILON): number {
  const { p, q, n, m } = proportions(reference, current);
  if (n === 0 || m === 0) return NaN;
  let s = 0;
  for (let i = 0; i < p.length; i++) {
    const a = p[i] > 0 ? p[i] : epsilon;
    const b = q[i] > 0 ? q[i] : epsilon;
    s += (b - a) * Math.log(b / a);
  }
  return s;
}
