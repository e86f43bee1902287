// One request as the statistics see it. `sampleOf` runs on the request path, so it only keeps
// references to what the request already allocated (the parsed rows, the decoded pixels, the
// predictions); `sketchSample` runs later, off the request path, and turns it into sketch rows:
//
// - tabular: one row per request row, values by feature name (rows given as arrays are named in the
//   bundle's feature order; a category index becomes its name), so `addRow` counts missing, extra
//   and wrongly typed fields. Requests refused as INVALID_INPUT count too (without outputs): with
//   the default strict preprocessing that is where missing fields and wrong types show up.
// - image: per image the features of protocol/sketch/image-features.ts, computed from the pixels
//   the preprocessing decoded and resized (no second decode), named as `imageFeatureRow` names them,
//   through firmware-bundles/image-pixels.ts, which the server's image references use too.
// - tensor: one row per request, the definition's summaries (firmware-bundles/tensor-summaries.ts)
//   of the tensors sent and the outputs answered.
// - outputs: the top-1 class index and its score (classification), or the first value (regression).
// - detection bundles: each image's row also holds `detections` (how many boxes were answered) and,
//   `detection_score_mean` (null, not missing, for an image without any); the output is the best detection's class and
//   score (so a classification layout's histogram counts the images' top labels). Prediction drift
//   for a detector is then a shift in these: fewer boxes, lower scores, other labels.
import type { BundleDefinition } from '../../firmware-bundles/definition.ts';
import { addRow, type FeatureSetSketch, type RowOutput, type RowValue } from '../../protocol/sketch/feature-set-sketch.ts';
import { imagePixelsFeatureRow } from '../../firmware-bundles/image-pixels.ts';
import { summaryRow } from '../../firmware-bundles/tensor-summaries.ts';
import type { PredictionEvent } from '../model-runtime.ts';

type Predictions = NonNullable<PredictionEvent['rows']>;
type Pixels = NonNullable<PredictionEvent['pixels']>;

export interface StatsSample {
  bundleId: string;
  /** Tabular: the request's rows as given (objects by name, or arrays in feature order). */
  rows?: readonly unknown[];
  /** Image: the decoded, resized 8-bit pixels per image. */
  pixels?: Pixels;
  /** Audio requests to tensor bundles: per frame, the frame fed and the outputs. */
  frames?: PredictionEvent['frames'];
  /** Tensor bundles: the request's named tensors and the answer's outputs. */
  tensors?: { inputs: Readonly<Record<string, unknown>>; outputs?: Readonly<Record<string, { data: number[] }>> };
  /** Per row or image, the top predictions; absent for a refused request. */
  predictions?: Predictions;
  /** Rows (or images) it holds. */
  count: number;
  /** Approximate bytes it keeps alive while queued. */
  bytes: number;
}

/** Rough size of one queued tabular row (a small parsed JSON object). */
const ROW_BYTES = 256;

/**
 * The sample of one finished request, or null if it carries nothing to sketch (broken requests; raw
 * tensors unless the bundle is a `tensor` one, whose summaries name what to compute from them).
 */
export function sampleOf(e: PredictionEvent, tensorBundle = false): StatsSample | null {
  const bundleId = e.bundle.id;
  if (e.pixels && e.pixels.length > 0) {
    let bytes = 0;
    for (const p of e.pixels) bytes += p.data.byteLength;
    return { bundleId, pixels: e.pixels, predictions: e.rows, count: e.pixels.length, bytes };
  }
  if (tensorBundle && e.ok && e.frames && e.frames.length > 0) {
    // Audio: one row per frame, like a stream of `inputs` requests.
    return { bundleId, frames: e.frames, predictions: e.rows, count: e.frames.length, bytes: e.frames.length * ROW_BYTES * 8 };
  }
  if (tensorBundle && 'inputs' in e.input && e.ok && e.input.inputs !== null && typeof e.input.inputs === 'object') {
    return { bundleId, tensors: { inputs: e.input.inputs as Record<string, unknown>, outputs: e.output?.outputs }, predictions: e.rows, count: 1, bytes: e.output ? ROW_BYTES * 8 : ROW_BYTES };
  }
  if (!('features' in e.input) || (!e.ok && e.code !== 'INVALID_INPUT')) return null;
  const rows = splitRows(e.input.features);
  if (!rows) return null;
  return { bundleId, rows, predictions: e.ok ? e.rows : undefined, count: rows.length, bytes: rows.length * ROW_BYTES };
}

/** Mirrors the tabular preprocessing: an object is one row; an array holding an object or array is a batch. */
function splitRows(features: unknown): readonly unknown[] | null {
  if (Array.isArray(features)) {
    if (features.length === 0) return null;
    return features.some((r) => r !== null && typeof r === 'object') ? features : [features];
  }
  return features !== null && typeof features === 'object' ? [features] : null;
}

/** How a bundle's requests map onto sketch rows (built once per window). */
export interface SampleSpec {
  task: 'classification' | 'regression' | 'none';
  /** Tabular feature names in model order (for rows given as arrays). */
  featureNames: readonly string[];
  /** Categorical features with declared categories: index → name. */
  categories: ReadonlyMap<string, readonly string[]>;
  /** Tensor bundles: the drift features to compute per request. */
  summaries?: Extract<BundleDefinition['preprocess'], { type: 'tensor' }>['summaries'];
  /** Detection bundles: per image, the count and mean score of its detections are features too. */
  detection?: boolean;
}

export function sampleSpecOf(definition: BundleDefinition, task: SampleSpec['task']): SampleSpec {
  const pre = definition.preprocess;
  const featureNames = pre.type === 'tabular' ? pre.features.map((f) => f.name) : [];
  const categories = new Map<string, readonly string[]>();
  if (pre.type === 'tabular') for (const f of pre.features) if (f.dtype === 'categorical' && f.categories?.length) categories.set(f.name, f.categories);
  return { task, featureNames, categories, ...(pre.type === 'tensor' && { summaries: pre.summaries }), ...(definition.postprocess.task === 'detection' && { detection: true }) };
}

function outputOf(spec: SampleSpec, predictions: Predictions | undefined, i: number): RowOutput | undefined {
  const top = predictions?.[i]?.[0];
  if (!top || spec.task === 'none') return undefined;
  return spec.task === 'classification' ? { predictedClass: top.index, confidence: top.score } : { value: top.score };
}

/** A detector's answer for one image as drift features (see the header); nothing for a refused request. */
export function detectionFeatures(detections: Predictions[number] | undefined): Record<string, number | null> {
  if (!detections) return {};
  if (detections.length === 0) return { detections: 0, detection_score_mean: null };
  let sum = 0;
  for (const d of detections) sum += d.score;
  return { detections: detections.length, detection_score_mean: sum / detections.length };
}

/** A tabular row by feature name, or null when it cannot be read as one (the request was refused for it). */
function namedRow(spec: SampleSpec, row: unknown): Readonly<Record<string, RowValue>> | null {
  let named: Record<string, unknown>;
  if (Array.isArray(row)) {
    if (row.length !== spec.featureNames.length) return null;
    named = {};
    spec.featureNames.forEach((name, j) => (named[name] = row[j]));
  } else if (row !== null && typeof row === 'object') {
    if (spec.categories.size === 0) return row as Record<string, RowValue>;
    named = { ...(row as Record<string, unknown>) };
  } else return null;
  for (const [name, cats] of spec.categories) {
    const v = named[name];
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < cats.length) named[name] = cats[v];
  }
  return named as Record<string, RowValue>;
}

/** Adds a sample's rows to `sketch`; returns how many rows it added. */
export function sketchSample(sketch: FeatureSetSketch, spec: SampleSpec, sample: StatsSample): number {
  let added = 0;
  if (sample.frames) {
    if (!spec.summaries) return 0;
    sample.frames.forEach((f, i) => addRow(sketch, summaryRow(spec.summaries!, f.inputs, f.outputs), outputOf(spec, sample.predictions, i)));
    return sample.frames.length;
  }
  if (sample.tensors) {
    if (!spec.summaries) return 0;
    addRow(sketch, summaryRow(spec.summaries, sample.tensors.inputs, sample.tensors.outputs), outputOf(spec, sample.predictions, 0));
    return 1;
  }
  if (sample.pixels) {
    sample.pixels.forEach((p, i) => {
      addRow(sketch, spec.detection ? { ...imagePixelsFeatureRow(p), ...detectionFeatures(sample.predictions?.[i]) } : imagePixelsFeatureRow(p), outputOf(spec, sample.predictions, i));
      added++;
    });
    return added;
  }
  sample.rows?.forEach((row, i) => {
    const named = namedRow(spec, row);
    if (!named) return;
    addRow(sketch, named, outputOf(spec, sample.predictions, i));
    added++;
  });
  return added;
}
