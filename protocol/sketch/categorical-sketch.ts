/**
 * Mergeable sketch of one categorical feature over a window, on a fixed category list that comes
 * from the reference. Because every device counts into the same slots, merges are exact sums.
 *
 * - `counts[i]` — occurrences of `categories[i]`.
 * - `other` — values not in the list (unseen at reference time). A growing `other` share is drift
 *   in itself, and it is part of every distribution comparison.
 * - `nulls` — `null`/`undefined`.
 * - `count` — non-null values: `sum(counts) + other`.
 *
 * Numbers are matched by their string form (`2` matches category `'2'`), so class indices and
 * integer-coded categories work without conversion.
 *
 * @example
 * const s = createCategoricalSketch(['red', 'green']);
 * ['red', 'blue', null, 'red'].forEach((v) => addCategorical(s, v));
 * s.counts; // [2, 0]   s.other; // 1   s.nulls; // 1
 */
import { SketchError, SketchMismatchError } from './errors.ts';

export interface CategoricalSketch {
  kind: 'categorical';
  categories: string[];
  counts: number[];
  other: number;
  nulls: number;
  count: number;
}

// Index lookup per category array, built once: an array scan per value would make adding O(K).
const indexCache = new WeakMap<readonly string[], Map<string, number>>();

function indexOf(categories: readonly string[]): Map<string, number> {
  let m = indexCache.get(categories);
  if (!m) {
    m = new Map(categories.map((c, i) => [c, i]));
    indexCache.set(categories, m);
  }
  return m;
}

/**
 * An empty sketch over `categories` (copied; must be distinct strings).
 *
 * @example
 * const s = createCategoricalSketch(['red', 'green', 'blue']);
 */
export function createCategoricalSketch(categories: readonly string[]): CategoricalSketch {
  if (new Set(categories).size !== categories.length) throw new SketchError('invalid_layout', 'categories must be distinct');
  return { kind: 'categorical', categories: categories.slice(), counts: new Array<number>(categories.length).fill(0), other: 0, nulls: 0, count: 0 };
}

/**
 * Adds one observation in place and returns the sketch.
 *
 * @example
 * addCategorical(s, 'red'); addCategorical(s, 'purple'); // other: 1
 */
export function addCategorical(s: CategoricalSketch, value: string | number | boolean | null | undefined): CategoricalSketch {
  if (value === null || value === undefined) {
    s.nulls++;
    return s;
  }
  const i = indexOf(s.categories).get(String(value));
  if (i === undefined) s.other++;
  else s.counts[i]++;
  s.count++;
  return s;
}

function sameCategories(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A new sketch holding both inputs' counts. Throws `SketchMismatchError('categories_mismatch')`.
 *
 * @example
 * const cohort = mergeCategoricalSketches(deviceA, deviceB);
 */
export function mergeCategoricalSketches(a: CategoricalSketch, b: CategoricalSketch): CategoricalSketch {
  if (a.kind !== 'categorical' || b.kind !== 'categorical') throw new SketchMismatchError('kind_mismatch', 'both sketches must be categorical');
  if (!sameCategories(a.categories, b.categories)) throw new SketchMismatchError('categories_mismatch', 'category lists differ');
  return {
    kind: 'categorical',
    categories: a.categories.slice(),
    counts: a.counts.map((c, i) => c + b.counts[i]),
    other: a.other + b.other,
    nulls: a.nulls + b.nulls,
    count: a.count + b.count,
  };
}

/**
 * The distribution compared by drift measures: category counts followed by `other`.
 *
 * @example
 * chiSquareTest(categoricalCounts(ref), categoricalCounts(cur));
 */
export function categoricalCounts(s: CategoricalSketch): number[] {
  return [...s.counts, s.other];
}
