/**
 * Mergeable sketch of one numeric feature over a window: counts, exact moments and a histogram
 * on the reference bin edges (interval convention in `bin-edges.ts`).
 *
 * - `count` — finite values seen; they feed moments and bins, so `sum(bins) === count`.
 * - `nulls` — `null`/`undefined` (missing) values.
 * - `nans` — NaN and ±Infinity: JSON cannot carry them and one of them would poison the moments,
 *   so they are counted apart instead of being binned. So are finite values beyond
 *   ±`MAX_SKETCH_MAGNITUDE` (1e100): squared in the moments (and again in merges) they overflow to
 *   Infinity, and one such value used to make the whole window unsendable. Counted, not kept: a
 *   wild value costs its own row of that feature, never the window.
 * - `outOfRange` — finite values outside the closed reference range `[edges[0], edges[E-1]]`.
 *   (A value equal to the last edge lands in the overflow bin but is not out of range.)
 * - `sums` — per-bin sum of the values, so each bin's exact mean (centroid) is known. Wasserstein
 *   on bins placed at midpoints was up to 90 % off on skewed data (tail bins are wide); at
 *   centroids it is within ~0.005 σ of the raw-sample distance (DRIFT.md). Sums merge by addition
 *   (exact up to float rounding, like the moments).
 * - `mean`, `m2` — Welford's running mean and sum of squared deviations; merged with Chan et al.'s
 *   parallel formula, which keeps merges accurate to ~1e-15 relative where the naive
 *   sum/sum-of-squares form loses everything to cancellation on large offsets.
 *
 * A sketch is a plain JSON object, so it goes on the wire as is (`protocol/messages/stats.ts`).
 *
 * @example
 * const s = createNumericSketch([0, 1, 2]);
 * for (const x of [0.5, 1.5, null, 7]) addNumeric(s, x);
 * s.bins;            // [0, 1, 1, 1]
 * s.sums;            // [0, 0.5, 1.5, 7]
 * numericStd(s);     // population standard deviation of 0.5, 1.5, 7
 * const all = mergeNumericSketches(s, other); // throws SketchMismatchError if edges differ
 */
import { assertValidEdges, binIndex, sameEdges } from './bin-edges.ts';
import { SketchMismatchError } from './errors.ts';

/**
 * Largest magnitude a sketch keeps (see `nans` above). Merges square mean differences and multiply
 * by counts, so the bound leaves ~10^100 of headroom below the double range.
 */
export const MAX_SKETCH_MAGNITUDE = 1e100;

export interface NumericSketch {
  kind: 'numeric';
  /** Strictly ascending reference edges (E of them). */
  edges: number[];
  /** E + 1 counts: underflow, E - 1 interior bins, overflow. */
  bins: number[];
  /** E + 1 sums of the values in each bin. */
  sums: number[];
  count: number;
  nulls: number;
  nans: number;
  outOfRange: number;
  /** `null` while `count === 0` (JSON has no ±Infinity). */
  min: number | null;
  max: number | null;
  mean: number;
  m2: number;
}

/**
 * An empty sketch on `edges` (copied, validated).
 *
 * @example
 * const s = createNumericSketch(layout.features.temp.edges);
 */
export function createNumericSketch(edges: readonly number[]): NumericSketch {
  assertValidEdges(edges);
  return {
    kind: 'numeric',
    edges: edges.slice(),
    bins: new Array<number>(edges.length + 1).fill(0),
    sums: new Array<number>(edges.length + 1).fill(0),
    count: 0,
    nulls: 0,
    nans: 0,
    outOfRange: 0,
    min: null,
    max: null,
    mean: 0,
    m2: 0,
  };
}

/**
 * Adds one observation in place (Welford) and returns the sketch.
 *
 * @example
 * addNumeric(s, 21.5); addNumeric(s, null); // nulls: 1
 */
export function addNumeric(s: NumericSketch, x: number | null | undefined): NumericSketch {
  if (x === null || x === undefined) {
    s.nulls++;
    return s;
  }
  if (!Number.isFinite(x) || Math.abs(x) > MAX_SKETCH_MAGNITUDE) {
    s.nans++;
    return s;
  }
  const n = ++s.count;
  const d = x - s.mean;
  s.mean += d / n;
  s.m2 += d * (x - s.mean);
  if (s.min === null || x < s.min) s.min = x;
  if (s.max === null || x > s.max) s.max = x;
  const i = binIndex(s.edges, x);
  s.bins[i]++;
  s.sums[i] += x;
  if (x < s.edges[0] || x > s.edges[s.edges.length - 1]) s.outOfRange++;
  return s;
}

/**
 * A new sketch equal to the sketch of both inputs' data. Counts and bins add exactly; mean/M2 use
 * Chan et al. (1979): δ = μb − μa, μ = μa + δ·nb/n, M2 = M2a + M2b + δ²·na·nb/n.
 * Throws `SketchMismatchError('edges_mismatch')` when the edges differ.
 *
 * @example
 * const fleet = devices.map((d) => d.sketch).reduce(mergeNumericSketches);
 */
export function mergeNumericSketches(a: NumericSketch, b: NumericSketch): NumericSketch {
  if (a.kind !== 'numeric' || b.kind !== 'numeric') throw new SketchMismatchError('kind_mismatch', 'both sketches must be numeric');
  if (!sameEdges(a.edges, b.edges)) {
    throw new SketchMismatchError('edges_mismatch', `bin edges differ (${a.edges.length} vs ${b.edges.length} edges)`);
  }
  const n = a.count + b.count;
  let mean = 0;
  let m2 = 0;
  if (a.count === 0) ({ mean, m2 } = b);
  else if (b.count === 0) ({ mean, m2 } = a);
  else {
    const delta = b.mean - a.mean;
    mean = a.mean + (delta * b.count) / n;
    m2 = a.m2 + b.m2 + ((delta * delta * a.count) / n) * b.count;
  }
  return {
    kind: 'numeric',
    edges: a.edges.slice(),
    bins: a.bins.map((c, i) => c + b.bins[i]),
    sums: a.sums.map((c, i) => c + b.sums[i]),
    count: n,
    nulls: a.nulls + b.nulls,
    nans: a.nans + b.nans,
    outOfRange: a.outOfRange + b.outOfRange,
    min: a.min === null ? b.min : b.min === null ? a.min : Math.min(a.min, b.min),
    max: a.max === null ? b.max : b.max === null ? a.max : Math.max(a.max, b.max),
    mean,
    m2,
  };
}

/**
 * Population variance (ddof = 0, as numpy's default and Evidently's normalisation use); 0 when empty.
 *
 * @example
 * numericVariance(s) // m2 / count
 */
export function numericVariance(s: NumericSketch): number {
  return s.count > 0 ? Math.max(0, s.m2) / s.count : 0;
}

/**
 * Sample variance (ddof = 1); 0 with fewer than two values.
 *
 * @example
 * numericSampleVariance(s) // m2 / (count - 1)
 */
export function numericSampleVariance(s: NumericSketch): number {
  return s.count > 1 ? Math.max(0, s.m2) / (s.count - 1) : 0;
}

/**
 * Population standard deviation.
 *
 * @example
 * wasserstein / Math.max(numericStd(reference), 0.001) // Evidently's normalisation
 */
export function numericStd(s: NumericSketch): number {
  return Math.sqrt(numericVariance(s));
}
