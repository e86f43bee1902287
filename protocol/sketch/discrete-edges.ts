/**
 * Bin edges for discrete numeric features: counts, ratings, flags — a reference column with few
 * distinct values. Quantile edges put several values in one bin (and `{0, 1}` collapsed to a single
 * bin), so a shift that stays inside a bin was invisible: a Poisson(3) feature moved off its
 * integers gave a binned KS of 0.002 where the raw KS is 0.23. Here every distinct value `v` gets a
 * bin of its own, `[v, nextUp(v))`, and the gaps between values get theirs, `[nextUp(vᵢ), vᵢ₊₁)`,
 * which are empty in the reference: a value between the reference's values is seen as such.
 * Edges stay plain numeric edges, so agents and merges need nothing new.
 *
 * A column is discrete when it has at most `maxValues` distinct finite values and at least two rows
 * per distinct value on average (a 20-row continuous reference has 20 distinct values and is not).
 *
 * @example
 * discreteEdges([0, 1, 1, 0, 1])     // [0, 5e-324, 1, 1.0000000000000002]: bins <0, {0}, (0,1), {1}, >1
 * isDiscreteColumn([0, 1, 1, 0, 1])  // true
 */
import { nextUp } from './bin-edges.ts';

/** Default cap on distinct values for per-value bins (2 × 32 + 1 = 65 bins at most). */
export const MAX_DISCRETE_VALUES = 32;

/** Sorted distinct values of `sorted` (ascending, finite), or `null` when there are more than `max`. */
export function distinctSorted(sorted: ArrayLike<number>, max: number): number[] | null {
  const out: number[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const v = sorted[i] === 0 ? 0 : sorted[i]; // -0 and 0 are one value
    if (out.length === 0 || v > out[out.length - 1]) {
      if (out.length === max) return null;
      out.push(v);
    }
  }
  return out;
}

/**
 * Whether a column of finite values should be binned per value (see the module comment).
 *
 * @example
 * isDiscreteColumn(poissonDraws) // true: ~12 distinct values in 20,000 rows
 */
export function isDiscreteColumn(finite: readonly number[], maxValues = MAX_DISCRETE_VALUES): boolean {
  if (finite.length === 0) return false;
  const distinct = distinctSorted(Float64Array.from(finite).sort(), maxValues);
  return distinct !== null && finite.length >= 2 * distinct.length;
}

/**
 * Per-value edges of the distinct values `values` (ascending): `[v₁, nextUp(v₁), v₂, nextUp(v₂), …]`.
 * A gap edge that would coincide with the next value (adjacent doubles) is left out; so is a top
 * edge that would be infinite (a column holding `Number.MAX_VALUE`).
 *
 * @example
 * perValueEdges([1, 2, 3]) // [1, nextUp(1), 2, nextUp(2), 3, nextUp(3)]
 */
export function perValueEdges(values: readonly number[]): number[] {
  const edges: number[] = [];
  for (let i = 0; i < values.length; i++) {
    edges.push(values[i]);
    const up = nextUp(values[i]);
    if (Number.isFinite(up) && (i + 1 === values.length || up < values[i + 1])) edges.push(up);
  }
  return edges;
}

/**
 * Per-value edges for a discrete column of finite values, or `null` when it is not discrete.
 *
 * @example
 * discreteEdges([0, 1, 1, 0, 1]) // 4 edges, 5 bins
 */
export function discreteEdges(finite: readonly number[], maxValues = MAX_DISCRETE_VALUES): number[] | null {
  if (finite.length === 0) return null;
  const distinct = distinctSorted(Float64Array.from(finite).sort(), maxValues);
  if (distinct === null || finite.length < 2 * distinct.length) return null;
  if (distinct.length === 1 && !Number.isFinite(nextUp(distinct[0]))) return null; // constant MAX_VALUE: quantile edges handle it
  return perValueEdges(distinct);
}
