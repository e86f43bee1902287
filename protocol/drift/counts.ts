/**
 * Shared checks for the measures that compare two count vectors over the same bins/categories.
 *
 * @example
 * const { p, q, n, m } = proportions([10, 0, 5], [3, 3, 3]);
 */
export function proportions(ref: readonly number[], cur: readonly number[]): { p: number[]; q: number[]; n: number; m: number } {
  if (ref.length !== cur.length) throw new RangeError(`count vectors differ in length (${ref.length} vs ${cur.length})`);
  let n = 0;
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    n += ref[i];
    m += cur[i];
  }
  return { p: ref.map((c) => (n > 0 ? c / n : 0)), q: cur.map((c) => (m > 0 ? c / m : 0)), n, m };
}

/**
 * n·m/(n+m): the sample size that makes a two-sample statistic comparable to a one-sample one
 * (KS: √(nm/(n+m))·D → Kolmogorov; chi-square: χ² = nm/(n+m)·Σ(p−q)²/r). Optionally capped, which
 * bounds how small a difference the tests can call significant (see DRIFT.md).
 *
 * @example
 * effectiveSampleSize(1000, 100_000) // ≈ 990
 * effectiveSampleSize(1e5, 1e5, 1000) // 1000
 */
export function effectiveSampleSize(n: number, m: number, cap?: number | null): number {
  const ne = n + m > 0 ? (n * m) / (n + m) : 0;
  return cap != null && cap > 0 ? Math.min(ne, cap) : ne;
}
