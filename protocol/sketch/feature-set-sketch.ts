/**
 * A model's statistics for one window: one sketch per input feature, sketches of its outputs
 * (prediction drift), and data-quality counters. This is the payload of the `stats` message and
 * what the server merges across devices and windows.
 *
 * The layout (edges, category lists, output kind) comes from the version's reference profile,
 * shipped in the bundle, so every device sketches on the same bins and merges stay exact.
 *
 * Quality counters, per row:
 * - `missing` — a layout feature absent from the row (`undefined`); also counted in that
 *   feature's `nulls`, so per-feature null rates include it.
 * - `extra` — a row key the layout does not know (one per key).
 * - `wrongType` — a numeric feature given a non-number (strings are not parsed) or a categorical
 *   feature given an object; recorded as a null in the feature so its counts stay consistent.
 * - `outOfRange`, `nans` — totals of the features' own counters, kept here for one-glance checks.
 *
 * @example
 * const s = createFeatureSetSketch({
 *   features: { temp: { kind: 'numeric', edges: [0, 10, 20] }, site: { kind: 'categorical', categories: ['a', 'b'] } },
 *   outputs: { task: 'classification', numClasses: 3 },
 * });
 * addRow(s, { temp: 12.5, site: 'a' }, { predictedClass: 2, confidence: 0.91 });
 * const fleet = mergeFeatureSetSketches(s, fromOtherDevice);
 */
import { addCategorical, createCategoricalSketch, mergeCategoricalSketches, type CategoricalSketch } from './categorical-sketch.ts';
import { sameEdges } from './bin-edges.ts';
import { SketchError, SketchMismatchError } from './errors.ts';
import { addNumeric, createNumericSketch, mergeNumericSketches, type NumericSketch } from './numeric-sketch.ts';

/** Confidence histogram edges: 0, 0.05, …, 1 (20 interior bins). A confidence of exactly 1 (saturated softmax) lands in the overflow bin. */
export const CONFIDENCE_EDGES: readonly number[] = Object.freeze(Array.from({ length: 21 }, (_, i) => Number((i / 20).toFixed(2))));

export type FeatureLayout = { kind: 'numeric'; edges: number[] } | { kind: 'categorical'; categories: string[] };

export type OutputLayout =
  /** Predicted class index → categories '0'…'numClasses-1'; top-1 confidence on `CONFIDENCE_EDGES`. */
  | { task: 'classification'; numClasses: number }
  /** Predicted value on reference edges. */
  | { task: 'regression'; edges: number[] }
  | { task: 'none' };

export interface SketchLayout {
  features: Record<string, FeatureLayout>;
  outputs: OutputLayout;
}

export type FeatureSketch = NumericSketch | CategoricalSketch;

export interface QualityCounters {
  rows: number;
  schemaViolations: { missing: number; extra: number; wrongType: number };
  outOfRange: number;
  nans: number;
}

export interface FeatureSetSketch {
  features: Record<string, FeatureSketch>;
  outputs: { predictedClass?: CategoricalSketch; confidence?: NumericSketch; value?: NumericSketch };
  quality: QualityCounters;
}

/** What the model produced for one row; fields the layout does not sketch are ignored. */
export interface RowOutput {
  predictedClass?: number | string | null;
  confidence?: number | null;
  value?: number | null;
}

export type RowValue = number | string | boolean | null | undefined;

function assertFeatureName(name: string): void {
  // A plain object keyed by '__proto__' would change its prototype instead of storing a feature.
  if (name.length === 0 || name === '__proto__') throw new SketchError('invalid_layout', `invalid feature name ${JSON.stringify(name)}`);
}

/**
 * An empty sketch on `layout`.
 *
 * @example
 * const window = createFeatureSetSketch(bundle.reference.layout);
 */
export function createFeatureSetSketch(layout: SketchLayout): FeatureSetSketch {
  const features: Record<string, FeatureSketch> = {};
  for (const [name, f] of Object.entries(layout.features)) {
    assertFeatureName(name);
    features[name] = f.kind === 'numeric' ? createNumericSketch(f.edges) : createCategoricalSketch(f.categories);
  }
  const outputs: FeatureSetSketch['outputs'] = {};
  if (layout.outputs.task === 'classification') {
    const k = layout.outputs.numClasses;
    if (!Number.isInteger(k) || k < 1) throw new SketchError('invalid_layout', 'numClasses must be a positive integer');
    outputs.predictedClass = createCategoricalSketch(Array.from({ length: k }, (_, i) => String(i)));
    outputs.confidence = createNumericSketch(CONFIDENCE_EDGES);
  } else if (layout.outputs.task === 'regression') {
    outputs.value = createNumericSketch(layout.outputs.edges);
  }
  return { features, outputs, quality: { rows: 0, schemaViolations: { missing: 0, extra: 0, wrongType: 0 }, outOfRange: 0, nans: 0 } };
}

/**
 * The layout a sketch was built on (to create an empty sketch like it, or to check compatibility).
 *
 * @example
 * createFeatureSetSketch(sketchLayout(referenceSketch)) // an empty sketch like it
 */
export function sketchLayout(s: FeatureSetSketch): SketchLayout {
  const features: Record<string, FeatureLayout> = {};
  for (const [name, f] of Object.entries(s.features)) {
    features[name] = f.kind === 'numeric' ? { kind: 'numeric', edges: f.edges.slice() } : { kind: 'categorical', categories: f.categories.slice() };
  }
  const outputs: OutputLayout = s.outputs.predictedClass
    ? { task: 'classification', numClasses: s.outputs.predictedClass.categories.length }
    : s.outputs.value
      ? { task: 'regression', edges: s.outputs.value.edges.slice() }
      : { task: 'none' };
  return { features, outputs };
}

function addNumericTracked(q: QualityCounters, s: NumericSketch, x: number | null): void {
  const nans = s.nans;
  const oor = s.outOfRange;
  addNumeric(s, x);
  q.nans += s.nans - nans;
  q.outOfRange += s.outOfRange - oor;
}

/**
 * Adds one row (and optionally the model's output for it) in place; returns the sketch.
 *
 * @example
 * addRow(window, { temp: 21.5, site: 'a' }, { predictedClass: 2, confidence: 0.93 });
 */
export function addRow(s: FeatureSetSketch, row: Readonly<Record<string, RowValue>>, output?: RowOutput): FeatureSetSketch {
  const q = s.quality;
  q.rows++;
  for (const name in s.features) {
    const f = s.features[name];
    const v = Object.hasOwn(row, name) ? row[name] : undefined;
    if (v === undefined) {
      q.schemaViolations.missing++;
      if (f.kind === 'numeric') addNumeric(f, null);
      else addCategorical(f, null);
    } else if (f.kind === 'numeric') {
      if (typeof v === 'number' || v === null) addNumericTracked(q, f, v);
      else {
        q.schemaViolations.wrongType++;
        addNumeric(f, null);
      }
    } else if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') {
      addCategorical(f, v);
    } else {
      q.schemaViolations.wrongType++;
      addCategorical(f, null);
    }
  }
  for (const key in row) if (!Object.hasOwn(s.features, key)) q.schemaViolations.extra++;
  if (output) {
    const o = s.outputs;
    if (o.predictedClass) addCategorical(o.predictedClass, output.predictedClass);
    if (o.confidence) addNumericTracked(q, o.confidence, output.confidence ?? null);
    if (o.value) addNumericTracked(q, o.value, output.value ?? null);
  }
  return s;
}

function mergeFeature(name: string, a: FeatureSketch, b: FeatureSketch): FeatureSketch {
  if (a.kind !== b.kind) throw new SketchMismatchError('kind_mismatch', `feature ${name}: ${a.kind} vs ${b.kind}`);
  try {
    return a.kind === 'numeric' ? mergeNumericSketches(a, b as NumericSketch) : mergeCategoricalSketches(a, b as CategoricalSketch);
  } catch (e) {
    if (e instanceof SketchMismatchError) throw new SketchMismatchError(e.code, `feature ${name}: ${e.message}`);
    throw e;
  }
}

function mergeOptional<T extends FeatureSketch>(name: string, a: T | undefined, b: T | undefined): T | undefined {
  if (!a && !b) return undefined;
  if (!a || !b) throw new SketchMismatchError('outputs_mismatch', `output ${name} present on one side only`);
  return mergeFeature(name, a, b) as T;
}

/**
 * A new sketch holding both inputs (exact for every count and bin; moments via Chan et al.).
 * Throws `SketchMismatchError` unless both have the same features, kinds, edges, categories and outputs.
 *
 * @example
 * const cohort = mergeFeatureSetSketches(deviceA, deviceB);
 */
export function mergeFeatureSetSketches(a: FeatureSetSketch, b: FeatureSetSketch): FeatureSetSketch {
  const namesA = Object.keys(a.features);
  const namesB = Object.keys(b.features);
  if (namesA.length !== namesB.length || namesA.some((n) => !Object.hasOwn(b.features, n))) {
    throw new SketchMismatchError('features_mismatch', 'feature sets differ');
  }
  const features: Record<string, FeatureSketch> = {};
  for (const n of namesA) features[n] = mergeFeature(n, a.features[n], b.features[n]);
  const outputs: FeatureSetSketch['outputs'] = {};
  const pc = mergeOptional('predictedClass', a.outputs.predictedClass, b.outputs.predictedClass);
  const conf = mergeOptional('confidence', a.outputs.confidence, b.outputs.confidence);
  const val = mergeOptional('value', a.outputs.value, b.outputs.value);
  if (pc) outputs.predictedClass = pc;
  if (conf) outputs.confidence = conf;
  if (val) outputs.value = val;
  const qa = a.quality;
  const qb = b.quality;
  return {
    features,
    outputs,
    quality: {
      rows: qa.rows + qb.rows,
      schemaViolations: {
        missing: qa.schemaViolations.missing + qb.schemaViolations.missing,
        extra: qa.schemaViolations.extra + qb.schemaViolations.extra,
        wrongType: qa.schemaViolations.wrongType + qb.schemaViolations.wrongType,
      },
      outOfRange: qa.outOfRange + qb.outOfRange,
      nans: qa.nans + qb.nans,
    },
  };
}

/**
 * Merges a non-empty list left to right (windows of a cohort, devices of a fleet).
 *
 * @example
 * const day = mergeAllFeatureSetSketches(windows.map((w) => w.sketch));
 */
export function mergeAllFeatureSetSketches(sketches: readonly FeatureSetSketch[]): FeatureSetSketch {
  if (sketches.length === 0) throw new SketchError('invalid_input', 'nothing to merge');
  // Always a fresh object, so callers can add to the result without touching an input.
  if (sketches.length === 1) return structuredClone(sketches[0]);
  // Accumulates into one copy instead of a new sketch per input: the same arithmetic in the same
  // order as merging pairwise left to right (so the same result), without allocating three arrays
  // per feature per input (10,000 windows × 50 features: 1.6 s → bench/RESULTS.md, "At scale: first measurement").
  const acc = mergeFeatureSetSketches(sketches[0], sketches[1]);
  for (let i = 2; i < sketches.length; i++) mergeInto(acc, sketches[i]);
  return acc;
}

/** Same checks and arithmetic as mergeFeatureSetSketches(acc, b), written into `acc` (which the caller owns). */
function mergeInto(acc: FeatureSetSketch, b: FeatureSetSketch): void {
  const names = Object.keys(acc.features);
  if (names.length !== Object.keys(b.features).length || names.some((n) => !Object.hasOwn(b.features, n))) {
    throw new SketchMismatchError('features_mismatch', 'feature sets differ');
  }
  for (const n of names) acc.features[n] = mergeFeatureInto(n, acc.features[n], b.features[n]);
  for (const k of ['predictedClass', 'confidence', 'value'] as const) {
    const x = acc.outputs[k];
    const y = b.outputs[k];
    if (!x && !y) continue;
    if (!x || !y) throw new SketchMismatchError('outputs_mismatch', `output ${k} present on one side only`);
    (acc.outputs as Record<string, FeatureSketch>)[k] = mergeFeatureInto(k, x, y);
  }
  const qa = acc.quality;
  const qb = b.quality;
  qa.rows += qb.rows;
  qa.schemaViolations.missing += qb.schemaViolations.missing;
  qa.schemaViolations.extra += qb.schemaViolations.extra;
  qa.schemaViolations.wrongType += qb.schemaViolations.wrongType;
  qa.outOfRange += qb.outOfRange;
  qa.nans += qb.nans;
}

/** A numeric feature is updated in place (as mergeNumericSketches computes it); others go through mergeFeature. */
function mergeFeatureInto(name: string, a: FeatureSketch, b: FeatureSketch): FeatureSketch {
  if (a.kind !== 'numeric' || b.kind !== 'numeric' || !sameEdges(a.edges, b.edges)) return mergeFeature(name, a, b);
  const n = a.count + b.count;
  if (a.count === 0) {
    a.mean = b.mean;
    a.m2 = b.m2;
  } else if (b.count !== 0) {
    const delta = b.mean - a.mean;
    a.mean = a.mean + (delta * b.count) / n;
    a.m2 = a.m2 + b.m2 + ((delta * delta * a.count) / n) * b.count;
  }
  for (let i = 0; i < a.bins.length; i++) a.bins[i] += b.bins[i];
  for (let i = 0; i < a.sums.length; i++) a.sums[i] += b.sums[i];
  a.count = n;
  a.nulls += b.nulls;
  a.nans += b.nans;
  a.outOfRange += b.outOfRange;
  a.min = a.min === null ? b.min : b.min === null ? a.min : Math.min(a.min, b.min);
  a.max = a.max === null ? b.max : b.max === null ? a.max : Math.max(a.max, b.max);
  return a;
}
