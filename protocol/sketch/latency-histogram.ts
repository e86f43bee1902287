/**
 * Latency histogram on one fixed, log-spaced bucket layout shared by every agent, so fleet-wide
 * histograms merge by adding counts (no re-binning, no error from merging).
 *
 * Bounds are 10^(k/10) ms for k = −13 … 48: ten buckets per decade from 0.0501 ms to 63.1 s, with
 * decade values (0.1, 1, 10, 100, 1000 ms) falling exactly on bounds so SLO thresholds line up.
 * Each bucket spans a factor 10^0.1 ≈ 1.26, so an interpolated quantile is within ~26 % of the true
 * value (in practice much closer). Intervals follow `bin-edges.ts`: `[b[i-1], b[i])`, with an
 * underflow bucket below 0.0501 ms and an overflow bucket from 63.1 s. Exact `min`, `max` and `sum`
 * are kept too; quantiles are clamped to [min, max].
 *
 * @example
 * const h = createLatencyHistogram();
 * for (const ms of [1.2, 3.4, 250]) recordLatency(h, ms);
 * latencyQuantile(h, 0.5); // ≈ 3.4
 * const fleet = mergeLatencyHistograms(h, other);
 */
import { binIndex } from './bin-edges.ts';
import { SketchMismatchError } from './errors.ts';

/** Identifies the bucket layout on the wire; bump if `LATENCY_BOUNDS_MS` ever changes. */
export const LATENCY_LAYOUT = 'log10x10-v1' as const;

/**
 * Bucket bounds in milliseconds (62 values). Rounded to 6 significant digits so that every engine
 * produces bit-identical bounds.
 */
export const LATENCY_BOUNDS_MS: readonly number[] = Object.freeze(
  Array.from({ length: 62 }, (_, i) => Number((10 ** ((i - 13) / 10)).toPrecision(6))),
);

/** Number of buckets: bounds + 1 (underflow and overflow included). */
export const LATENCY_BUCKETS = LATENCY_BOUNDS_MS.length + 1;

export interface LatencyHistogram {
  layout: typeof LATENCY_LAYOUT;
  /** `LATENCY_BUCKETS` counts. */
  counts: number[];
  count: number;
  sumMs: number;
  /** `null` while empty. */
  minMs: number | null;
  maxMs: number | null;
}

/**
 * An empty histogram on the shared layout.
 *
 * @example
 * const h = createLatencyHistogram(); // 63 zero buckets
 */
export function createLatencyHistogram(): LatencyHistogram {
  return { layout: LATENCY_LAYOUT, counts: new Array<number>(LATENCY_BUCKETS).fill(0), count: 0, sumMs: 0, minMs: null, maxMs: null };
}

/**
 * Records one duration in place. Returns `false` (and records nothing) for a negative or
 * non-finite value, which can only come from a bug in the caller's clock arithmetic.
 *
 * @example
 * recordLatency(h, performance.now() - t0);
 */
export function recordLatency(h: LatencyHistogram, ms: number): boolean {
  if (!Number.isFinite(ms) || ms < 0) return false;
  h.counts[binIndex(LATENCY_BOUNDS_MS, ms)]++;
  h.count++;
  h.sumMs += ms;
  if (h.minMs === null || ms < h.minMs) h.minMs = ms;
  if (h.maxMs === null || ms > h.maxMs) h.maxMs = ms;
  return true;
}

/**
 * A new histogram with both inputs' counts (exact).
 *
 * @example
 * const fleet = reports.map((r) => r.latency).reduce(mergeLatencyHistograms);
 */
export function mergeLatencyHistograms(a: LatencyHistogram, b: LatencyHistogram): LatencyHistogram {
  if (a.layout !== b.layout || a.counts.length !== b.counts.length) {
    throw new SketchMismatchError('buckets_mismatch', `latency layouts differ (${a.layout} vs ${b.layout})`);
  }
  return {
    layout: a.layout,
    counts: a.counts.map((c, i) => c + b.counts[i]),
    count: a.count + b.count,
    sumMs: a.sumMs + b.sumMs,
    minMs: a.minMs === null ? b.minMs : b.minMs === null ? a.minMs : Math.min(a.minMs, b.minMs),
    maxMs: a.maxMs === null ? b.maxMs : b.maxMs === null ? a.maxMs : Math.max(a.maxMs, b.maxMs),
  };
}

/**
 * `a` becomes the merge of `a` and `b`, as mergeLatencyHistograms computes it, without a new histogram
 * (ingest adds each report into its rollups' copies). Returns `a`.
 *
 * @example
 * const minute = cloneLatencyHistogram(first); mergeLatencyInto(minute, next);
 */
export function mergeLatencyInto(a: LatencyHistogram, b: LatencyHistogram): LatencyHistogram {
  if (a.layout !== b.layout || a.counts.length !== b.counts.length) {
    throw new SketchMismatchError('buckets_mismatch', `latency layouts differ (${a.layout} vs ${b.layout})`);
  }
  for (let i = 0; i < a.counts.length; i++) a.counts[i] += b.counts[i];
  a.count += b.count;
  a.sumMs += b.sumMs;
  a.minMs = a.minMs === null ? b.minMs : b.minMs === null ? a.minMs : Math.min(a.minMs, b.minMs);
  a.maxMs = a.maxMs === null ? b.maxMs : b.maxMs === null ? a.maxMs : Math.max(a.maxMs, b.maxMs);
  return a;
}

/**
 * The merge of histograms stored as JSON and joined by SQLite's `group_concat(latency, ',')` (one row per
 * device instead of one per rollup), in the order they were joined.
 */
export function mergeJoinedLatencies(joined: string): LatencyHistogram {
  const acc = createLatencyHistogram();
  for (const h of JSON.parse(`[${joined}]`) as LatencyHistogram[]) mergeLatencyInto(acc, h);
  return acc;
}

/** A copy that mergeLatencyInto may change. */
export function cloneLatencyHistogram(h: LatencyHistogram): LatencyHistogram {
  return { layout: h.layout, counts: h.counts.slice(), count: h.count, sumMs: h.sumMs, minMs: h.minMs, maxMs: h.maxMs };
}

/**
 * Estimated q-quantile (0 ≤ q ≤ 1) in ms, or `null` when empty. Finds the bucket holding rank
 * q·count and interpolates linearly inside it (as Prometheus' `histogram_quantile` does), using
 * the exact min/max for the open-ended buckets and to tighten the first and last occupied ones.
 *
 * @example
 * latencyQuantile(h, 0.95) // p95 in ms
 */
export function latencyQuantile(h: LatencyHistogram, q: number): number | null {
  if (h.count === 0 || h.minMs === null || h.maxMs === null) return null;
  if (!(q >= 0 && q <= 1)) throw new RangeError('q must be in [0, 1]');
  const rank = q * h.count;
  if (rank <= 0) return h.minMs;
  let before = 0;
  for (let i = 0; i < h.counts.length; i++) {
    const c = h.counts[i];
    if (c === 0) continue;
    if (before + c >= rank) {
      const lo = Math.max(i === 0 ? h.minMs : LATENCY_BOUNDS_MS[i - 1], h.minMs);
      const hi = Math.min(i === LATENCY_BOUNDS_MS.length ? h.maxMs : LATENCY_BOUNDS_MS[i], h.maxMs);
      const v = lo + ((rank - before) / c) * (hi - lo);
      return Math.min(Math.max(v, h.minMs), h.maxMs);
    }
    before += c;
  }
  return h.maxMs;
}

/**
 * p50/p95/p99 and mean in ms (all `null` when empty): what dashboards and rollout gates read.
 *
 * @example
 * latencySummary(h) // { count, meanMs, p50, p95, p99 }
 */
export function latencySummary(h: LatencyHistogram): { count: number; meanMs: number | null; p50: number | null; p95: number | null; p99: number | null } {
  return {
    count: h.count,
    meanMs: h.count > 0 ? h.sumMs / h.count : null,
    p50: latencyQuantile(h, 0.5),
    p95: latencyQuantile(h, 0.95),
    p99: latencyQuantile(h, 0.99),
  };
}
