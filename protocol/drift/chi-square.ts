/**
 * Chi-square test of homogeneity on a 2 × K contingency table (reference counts vs current counts
 * per category, `other` included): are both samples drawn from the same categorical distribution?
 *
 * χ² = Σ (O − E)² / E with E from the pooled proportions, df = K' − 1 where K' counts categories
 * seen on either side (all-zero columns carry no information and are dropped, as scipy's
 * `chi2_contingency` would otherwise fail on them). p-value = Q(df/2, χ²/2), the regularized upper
 * incomplete gamma function. For two categories this equals the two-proportion z-test (χ² = z²),
 * which Evidently uses for binary features.
 *
 * Evidently instead runs a goodness-of-fit test of the current counts against the reference
 * proportions taken as exact; that ignores the reference's own sampling noise (too many alarms
 * with a 1,000-row reference) and is undefined when the reference lacks a category. The homogeneity
 * test is what NannyML uses (`chi2_contingency`). Identity used for the cap:
 * χ² = nₑ · Σ (pᵢ − qᵢ)² / rᵢ with nₑ = nm/(n+m) and r the pooled proportions, so `maxEffectiveN`
 * scales χ² by min(nₑ, cap)/nₑ (DRIFT.md).
 *
 * @example
 * chiSquareTest([500, 300, 200], [450, 350, 200]).pValue // ≈ 0.039 (χ² = 6.48, df = 2)
 */
import { effectiveSampleSize, proportions } from './counts.ts';
import { chiSquareSurvival } from './special-functions.ts';

export interface ChiSquareResult {
  /** χ² (scaled down when `maxEffectiveN` caps nₑ). */
  statistic: number;
  df: number;
  pValue: number;
  effectiveN: number;
}

export function chiSquareTest(reference: readonly number[], current: readonly number[], opts: { maxEffectiveN?: number | null } = {}): ChiSquareResult {
  const { p, q, n, m } = proportions(reference, current);
  if (n === 0 || m === 0) return { statistic: NaN, df: 0, pValue: NaN, effectiveN: 0 };
  let s = 0;
  let k = 0;
  for (let i = 0; i < p.length; i++) {
    const r = (reference[i] + current[i]) / (n + m);
    if (r === 0) continue;
    k++;
    s += ((p[i] - q[i]) * (p[i] - q[i])) / r;
  }
  const df = k - 1;
  const ne = effectiveSampleSize(n, m, opts.maxEffectiveN);
  const statistic = ne * s;
  if (df < 1) return { statistic: 0, df: 0, pValue: 1, effectiveN: ne };
  return { statistic, df, pValue: chiSquareSurvival(statistic, df), effectiveN: ne };
}
