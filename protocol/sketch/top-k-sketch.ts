/**
 * Bounded "heavy hitters" sketch for categorical values whose vocabulary is not known from the
 * reference (free-text labels, device-reported strings). Misra–Gries summary with `k` counters,
 * merged as in Agarwal et al., "Mergeable Summaries" (PODS 2012).
 *
 * APPROXIMATE, unlike `CategoricalSketch`: a tracked value's counter undercounts its true
 * frequency by at most `topKMaxError(s) = (count − Σ counters) / (k + 1)`, and any value whose
 * true count exceeds that bound is guaranteed to be tracked. Merges keep the same guarantee, but
 * the merged counters are not equal to the counters of the concatenated stream — use the fixed-
 * vocabulary `CategoricalSketch` wherever exact fleet-wide merges matter (drift tests need them).
 *
 * @example
 * const s = createTopKSketch(2);
 * for (const v of ['a', 'a', 'b', 'c', 'a']) addTopK(s, v);
 * topKItems(s); // [{ value: 'a', lower: 2, upper: 3 }, …] — true count of 'a' is 3
 */
import { SketchError, SketchMismatchError } from './errors.ts';

export interface TopKSketch {
  kind: 'topk';
  /** Maximum number of counters. */
  k: number;
  /** Tracked values and their (under-)counts, same length; parallel arrays keep JSON keys safe. */
  values: string[];
  counts: number[];
  /** Non-null values seen. */
  count: number;
  nulls: number;
}

/**
 * An empty sketch keeping at most `k` counters (1…10,000).
 *
 * @example
 * const labels = createTopKSketch(50);
 */
export function createTopKSketch(k: number): TopKSketch {
  if (!Number.isInteger(k) || k < 1 || k > 10_000) throw new SketchError('invalid_layout', 'k must be an integer in 1..10000');
  return { kind: 'topk', k, values: [], counts: [], count: 0, nulls: 0 };
}

/**
 * Adds one value in place (Misra–Gries step) and returns the sketch.
 *
 * @example
 * addTopK(labels, 'forklift');
 */
export function addTopK(s: TopKSketch, value: string | number | boolean | null | undefined): TopKSketch {
  if (value === null || value === undefined) {
    s.nulls++;
    return s;
  }
  s.count++;
  const v = String(value);
  const i = s.values.indexOf(v);
  if (i >= 0) s.counts[i]++;
  else if (s.values.length < s.k) {
    s.values.push(v);
    s.counts.push(1);
  } else {
    // No free counter: decrement all k counters together with the new value (k + 1 items drop one each).
    let w = 0;
    for (let r = 0; r < s.values.length; r++) {
      const c = s.counts[r] - 1;
      if (c > 0) {
        s.values[w] = s.values[r];
        s.counts[w++] = c;
      }
    }
    s.values.length = w;
    s.counts.length = w;
  }
  return s;
}

/**
 * A new sketch summarising both inputs: counters are added, then (if more than k remain) the
 * (k+1)-th largest counter is subtracted from all and non-positive ones dropped.
 *
 * @example
 * const fleet = mergeTopKSketches(a, b); // same k on both sides
 */
export function mergeTopKSketches(a: TopKSketch, b: TopKSketch): TopKSketch {
  if (a.kind !== 'topk' || b.kind !== 'topk') throw new SketchMismatchError('kind_mismatch', 'both sketches must be top-k');
  if (a.k !== b.k) throw new SketchMismatchError('k_mismatch', `k differs (${a.k} vs ${b.k})`);
  const sum = new Map<string, number>();
  a.values.forEach((v, i) => sum.set(v, a.counts[i]));
  b.values.forEach((v, i) => sum.set(v, (sum.get(v) ?? 0) + b.counts[i]));
  let entries = [...sum.entries()].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1));
  if (entries.length > a.k) {
    const cut = entries[a.k][1];
    entries = entries.map(([v, c]) => [v, c - cut] as [string, number]).filter(([, c]) => c > 0);
  }
  return {
    kind: 'topk',
    k: a.k,
    values: entries.map(([v]) => v),
    counts: entries.map(([, c]) => c),
    count: a.count + b.count,
    nulls: a.nulls + b.nulls,
  };
}

/**
 * Upper bound on how much any counter undercounts its value's true frequency.
 *
 * @example
 * topKMaxError(s) // every tracked count is within this of the truth
 */
export function topKMaxError(s: TopKSketch): number {
  let tracked = 0;
  for (const c of s.counts) tracked += c;
  return (s.count - tracked) / (s.k + 1);
}

/**
 * Tracked values, most frequent first, with bounds on their true counts.
 *
 * @example
 * topKItems(s)[0] // { value: 'a', lower: 120, upper: 123.5 }
 */
export function topKItems(s: TopKSketch): Array<{ value: string; lower: number; upper: number }> {
  const err = topKMaxError(s);
  return s.values
    .map((value, i) => ({ value, lower: s.counts[i], upper: s.counts[i] + err }))
    .sort((x, y) => y.lower - x.lower || (x.value < y.value ? -1 : 1));
}
