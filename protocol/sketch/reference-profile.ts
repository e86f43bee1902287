/**
 * The reference profile of a model version: bin edges and category lists derived from a reference
 * dataset, plus that dataset's own sketch computed with the very code the agents run, so reference
 * and production windows are binned identically.
 *
 * Numeric edges are reference quantiles at k / bins (k = 0 … bins), using the inverse empirical CDF
 * (numpy `method='inverted_cdf'`), so every edge is an observed value and discrete features get one
 * bin per distinct value instead of edges between them. Ties collapse (edges are deduplicated, so
 * a feature may get fewer bins than asked). The last edge is then raised to the next double above
 * the maximum so the reference maximum sits in the top interior bin: the reference's underflow and
 * overflow bins are empty and anything landing there in production is new territory. A constant
 * feature `c` gets edges `[c, nextUp(c)]`: one bin for exactly `c`, underflow and overflow around it.
 * A numeric feature with no finite reference value gets placeholder edges `[0, 1]` (its reference
 * count is 0, so drift reports `insufficient_data` for it).
 *
 * A discrete numeric column (few distinct values, e.g. counts or flags) gets one bin per value and
 * one per gap between values instead (`discrete-edges.ts`), so `{0, 1}` keeps two bins and a shift
 * off the integers is seen.
 *
 * Categorical features use the spec's `categories` when given, else the reference's distinct
 * values by descending frequency (ties by name), at most `maxCategories`; the rest count as `other`.
 *
 * Output confidence uses the fixed `CONFIDENCE_EDGES`; regression outputs get quantile edges like
 * numeric features.
 *
 * @example
 * const { layout, sketch } = computeReferenceProfile(rows, {
 *   features: [{ name: 'temp', kind: 'numeric' }, { name: 'site', kind: 'categorical' }],
 *   outputs: { task: 'classification', numClasses: 3 },
 * }, { bins: 20 });
 * // layout.features.temp.edges → ship in the bundle; sketch → store as the version's reference
 */
import { nextUp } from './bin-edges.ts';
import { MAX_SKETCH_MAGNITUDE } from './numeric-sketch.ts';
import { discreteEdges, MAX_DISCRETE_VALUES } from './discrete-edges.ts';
import { SketchError } from './errors.ts';
import { addRow, createFeatureSetSketch, type FeatureLayout, type FeatureSetSketch, type OutputLayout, type RowOutput, type SketchLayout } from './feature-set-sketch.ts';

export type ReferenceRow = Record<string, number | string | null>;

export interface ReferenceSpec {
  features: Array<{ name: string; kind: 'numeric' | 'categorical'; categories?: string[] }>;
  /** Where the reference rows keep the model's outputs (columns are excluded from the features). */
  outputs?:
    | { task: 'classification'; numClasses: number; predictedClassColumn?: string; confidenceColumn?: string }
    | { task: 'regression'; valueColumn?: string };
}

export interface ReferenceOptions {
  /** Requested numeric bins (quantile intervals), default 20. */
  bins?: number;
  /** Cap on inferred categories, default 100. */
  maxCategories?: number;
  /**
   * Numeric columns with at most this many distinct values (and ≥ 2 rows per value) get one bin per
   * value instead of quantile bins (`discrete-edges.ts`); default 32, 0 turns it off.
   */
  maxDiscreteValues?: number;
}

/**
 * Edges for one numeric reference column: per value when it is discrete, else quantile edges.
 *
 * @example
 * numericEdges([0, 1, 0, 1], 20) // per-value: {0} and {1} get a bin each
 */
export function numericEdges(values: readonly number[], bins: number, maxDiscreteValues = MAX_DISCRETE_VALUES): number[] {
  if (maxDiscreteValues > 0) {
    const finite = values.filter((v) => Number.isFinite(v));
    const discrete = discreteEdges(finite, maxDiscreteValues);
    if (discrete) return discrete;
  }
  return quantileEdges(values, bins);
}

export interface ReferenceProfile {
  layout: SketchLayout;
  sketch: FeatureSetSketch;
}

/**
 * Quantile bin edges of `values` (non-finite values ignored), as described above.
 *
 * @example
 * quantileEdges([1, 2, 3, 4], 2) // [1, 2, 4.000000000000001]
 */
export function quantileEdges(values: Iterable<number>, bins: number): number[] {
  if (!Number.isInteger(bins) || bins < 1 || bins > 1000) throw new SketchError('invalid_input', 'bins must be an integer in 1..1000');
  const finite: number[] = [];
  for (const v of values) if (Number.isFinite(v)) finite.push(v);
  if (finite.length === 0) return [0, 1];
  const sorted = Float64Array.from(finite).sort();
  const n = sorted.length;
  const edges: number[] = [];
  for (let k = 0; k <= bins; k++) {
    // Inverse ECDF: the smallest x with F(x) >= k / bins.
    const idx = Math.min(n - 1, Math.max(0, Math.ceil((k * n) / bins) - 1));
    const x = sorted[idx];
    if (edges.length === 0 || x > edges[edges.length - 1]) edges.push(x === 0 ? 0 : x); // normalise -0
  }
  const top = nextUp(edges[edges.length - 1]);
  if (Number.isFinite(top)) {
    if (edges.length === 1) edges.push(top);
    else edges[edges.length - 1] = top;
  } else if (edges.length === 1) {
    edges.unshift(-Number.MAX_VALUE); // a constant MAX_VALUE column: keep two edges, stay finite
  }
  return edges;
}

function inferCategories(rows: readonly ReferenceRow[], name: string, max: number): string[] {
  const freq = new Map<string, number>();
  for (const r of rows) {
    const v = Object.hasOwn(r, name) ? r[name] : null;
    if (v === null || v === undefined) continue;
    const k = String(v);
    freq.set(k, (freq.get(k) ?? 0) + 1);
  }
  return [...freq.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, max)
    .map(([k]) => k);
}

function numericColumn(rows: readonly ReferenceRow[], name: string): number[] {
  const out: number[] = [];
  for (const r of rows) {
    const v = Object.hasOwn(r, name) ? r[name] : null;
    if (typeof v === 'number' && Math.abs(v) <= MAX_SKETCH_MAGNITUDE) out.push(v); // beyond it a sketch counts the value as unusable
  }
  return out;
}

/**
 * Computes the layout and the reference sketch of `rows` (see the module comment).
 *
 * @example
 * const { layout, sketch } = computeReferenceProfile(rows, { features: [{ name: 'x', kind: 'numeric' }] });
 */
export function computeReferenceProfile(rows: readonly ReferenceRow[], spec: ReferenceSpec, opts: ReferenceOptions = {}): ReferenceProfile {
  const bins = opts.bins ?? 20;
  const maxCategories = opts.maxCategories ?? 100;
  const maxDiscrete = opts.maxDiscreteValues ?? MAX_DISCRETE_VALUES;
  const features: Record<string, FeatureLayout> = {};
  for (const f of spec.features) {
    if (Object.hasOwn(features, f.name)) throw new SketchError('invalid_layout', `duplicate feature ${f.name}`);
    features[f.name] =
      f.kind === 'numeric'
        ? { kind: 'numeric', edges: numericEdges(numericColumn(rows, f.name), bins, maxDiscrete) }
        : { kind: 'categorical', categories: f.categories ? f.categories.slice() : inferCategories(rows, f.name, maxCategories) };
  }

  const o = spec.outputs;
  let outputs: OutputLayout = { task: 'none' };
  const outputColumns: string[] = [];
  if (o?.task === 'classification') {
    outputs = { task: 'classification', numClasses: o.numClasses };
    outputColumns.push(o.predictedClassColumn ?? 'predictedClass', o.confidenceColumn ?? 'confidence');
  } else if (o?.task === 'regression') {
    const col = o.valueColumn ?? 'value';
    outputs = { task: 'regression', edges: numericEdges(numericColumn(rows, col), bins, maxDiscrete) };
    outputColumns.push(col);
  }
  for (const c of outputColumns) if (Object.hasOwn(features, c)) throw new SketchError('invalid_layout', `output column ${c} is also a feature`);

  const layout: SketchLayout = { features, outputs };
  const sketch = createFeatureSetSketch(layout);
  for (const r of rows) {
    if (outputColumns.length === 0) {
      addRow(sketch, r);
      continue;
    }
    const inputs: ReferenceRow = {};
    for (const k in r) if (!outputColumns.includes(k)) inputs[k] = r[k];
    const get = (c: string) => (Object.hasOwn(r, c) ? r[c] : null);
    const out: RowOutput =
      o?.task === 'classification'
        ? { predictedClass: get(outputColumns[0]), confidence: asNumber(get(outputColumns[1])) }
        : { value: asNumber(get(outputColumns[0])) };
    addRow(sketch, inputs, out);
  }
  return { layout, sketch };
}

function asNumber(v: number | string | null): number | null {
  return typeof v === 'number' ? v : null;
}
