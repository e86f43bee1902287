/**
 * Postprocessing: the model's score output → per-row predictions `{ label, index, score }`.
 *
 * - classification: optional softmax (numerically stable: the row's max is subtracted before exp),
 *   then the top K classes by score, highest first (ties: lower index first), labelled from the
 *   bundle's labels (the index as a string when there is no label for it).
 * - regression: every value of the row, in order, as `{ label, index, score: value }` (no softmax,
 *   no top K); `label` names the target from the labels if given, else the output name (one value)
 *   or `<output>[i]`.
 *
 * - binary: one probability per row (the row's first value, e.g. an output [N, 1]) against the
 *   threshold: `{ label: labels[1] ?? 'positive', index: 1, score: p }` at or above it,
 *   `{ label: labels[0] ?? 'negative', index: 0, score: p }` below (score stays the probability).
 * - outputs: no predictions (one empty row): the answer's named outputs are the result.
 * - detection: per image the detections left after thresholding and NMS, each with its `box` in the
 *   original image's pixels (detection.ts).
 *
 * Rows: an output [N, …] has N rows of the remaining elements; a rank-1 output is one row; a scalar
 * is one row of one value.
 *
 * @example
 * postprocess({ logits: { type: 'float32', dims: [1, 3], data: Float32Array.of(1, 3, 2) } }, { softmax: true, topK: 2, task: 'classification' }, ['a', 'b', 'c'])
 * // [[{ label: 'b', index: 1, score: 0.665 }, { label: 'c', index: 2, score: 0.245 }]]
 */
import type { Postprocess } from '../../firmware-bundles/definition.ts';
import { detect, type Box, type ImagePlacement } from './detection.ts';
import { RuntimeError } from './errors.ts';
import type { HostTensor } from './tensor.ts';

export interface Prediction {
  label: string;
  index: number;
  score: number;
  /** detection: [x1, y1, x2, y2] in the original image's pixels. */
  box?: Box;
}

/** The postprocess fields this module uses (the definition's `Postprocess` fits). */
export type PostprocessSpec = Pick<Postprocess, 'softmax' | 'topK' | 'task'> & Partial<Pick<Postprocess, 'detection'>> & { output?: string; threshold?: number };

/** `images`: for detection, where each image of the request sat in the model's input (its letterbox). */
export function postprocess(outputs: Record<string, HostTensor>, spec: PostprocessSpec, labels?: readonly string[], images: readonly ImagePlacement[] = []): Prediction[][] {
  if (spec.task === 'outputs') return [[]];
  if (spec.task === 'detection') {
    if (!spec.detection) throw new RuntimeError('BUNDLE_MISMATCH', 'postprocess: task "detection" needs "detection" (its boxes and scores outputs)');
    return detect(outputs, spec.detection, labels, images);
  }
  const name = spec.output ?? Object.keys(outputs)[0];
  const t = name === undefined ? undefined : outputs[name];
  if (!t) throw new RuntimeError('BUNDLE_MISMATCH', `postprocess: the model has no output "${name}" (outputs: ${Object.keys(outputs).join(', ')})`);
  if (Array.isArray(t.data)) throw new RuntimeError('BUNDLE_MISMATCH', `postprocess: output "${name}" holds strings, not scores`);
  const values = t.data as ArrayLike<number | bigint>;
  const rows = t.dims.length === 0 ? 1 : t.dims.length === 1 ? 1 : t.dims[0];
  const width = rows === 0 ? 0 : values.length / rows;
  const result: Prediction[][] = [];
  for (let r = 0; r < rows; r++) {
    const row = new Float64Array(width);
    for (let i = 0; i < width; i++) row[i] = Number(values[r * width + i]);
    if (spec.task === 'binary') {
      const p = row[0];
      const index = p >= (spec.threshold ?? 0.5) ? 1 : 0;
      result.push([{ label: labels?.[index] ?? (index === 1 ? 'positive' : 'negative'), index, score: p }]);
      continue;
    }
    if (spec.task === 'regression') {
      result.push(Array.from(row, (score, index) => ({ label: labels?.[index] ?? (width === 1 ? name : `${name}[${index}]`), index, score })));
      continue;
    }
    const scores = spec.softmax ? softmax(row) : row;
    result.push(topK(scores, spec.topK).map((index) => ({ label: labels?.[index] ?? String(index), index, score: scores[index] })));
  }
  return result;
}

/** Softmax of one row, stable for large logits: exp(x − max) / Σ exp(x − max). */
export function softmax(row: ArrayLike<number>): Float64Array {
  const out = new Float64Array(row.length);
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  if (max === -Infinity || Number.isNaN(max)) return out.fill(NaN);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += out[i] = Math.exp(row[i] - max);
  for (let i = 0; i < row.length; i++) out[i] /= sum;
  return out;
}

/** Indices of the k largest scores, highest first; ties keep the lower index first; NaN sorts last. */
export function topK(scores: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  const key = (i: number) => (Number.isNaN(scores[i]) ? -Infinity : scores[i]);
  idx.sort((a, b) => key(b) - key(a) || a - b);
  return idx.slice(0, Math.min(k, idx.length));
}
