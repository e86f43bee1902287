/**
 * Request → model feeds, following the active bundle's preprocessing spec. A request carries exactly
 * one of:
 * - `features`: tabular rows (see `preprocess-tabular.ts`), for a `tabular` spec;
 * - `image`: encoded image bytes, one or a batch (see `preprocess-image.ts`), for an `image` spec;
 * - `inputs`: tensors as JSON `{ name: { dims, data } }` (see `json-tensors.ts`), for any model.
 *
 * Preprocessing yields float32; when the model's input is another numeric type (int64 category
 * indices, uint8 pixels with scale 1) the values are converted, refusing ones that do not fit.
 *
 * @example
 * const pre = await preprocessRequest(bundle.preprocess, { features: { f0: 1.5, f1: 2 } }, handle.inputs);
 * await host.infer(pre.feeds, { handle });
 */
import type { Preprocess } from '../../firmware-bundles/definition.ts';
import { invalidInput } from './errors.ts';
import { tensorsFromJson } from './json-tensors.ts';
import { preprocessImage, type ImageOptions, type ImagePixels } from './preprocess-image.ts';
import { preprocessTabular, type RowQuality, type TabularPolicy } from './preprocess-tabular.ts';
import { preprocessTensor } from './preprocess-tensor.ts';
import { castFloat32, type HostTensor, type TensorMeta } from './tensor.ts';

export { preprocessTabular, type RowQuality, type TabularInput, type TabularPolicy, type TabularResult, type TabularRow } from './preprocess-tabular.ts';
export { preprocessImage, type ImageBytes, type ImageInput, type ImageOptions, type ImagePixels, type ImageResult } from './preprocess-image.ts';
export { tensorsFromJson, type JsonTensor } from './json-tensors.ts';

export type PredictRequest = { features: unknown } | { image: unknown } | { inputs: unknown };

export interface PreprocessOptions {
  tabular?: TabularPolicy;
  image?: ImageOptions;
}

export interface Preprocessed {
  feeds: Record<string, HostTensor>;
  /** The request was a batch (rows given as a list); a single row/image otherwise. */
  batch: boolean;
  /** Tabular requests: quality counts per row. */
  quality?: RowQuality[];
  /** Tabular requests: the float32 [rows, features] values in feature order (for input statistics). */
  features?: Float32Array;
  /** Image requests: resized 8-bit pixels per image (for input statistics). */
  pixels?: ImagePixels[];
}

/**
 * `carried`: for a `tensor` spec, the state the agent kept for the request's session (see
 * preprocess-tensor.ts).
 */
export async function preprocessRequest(spec: Preprocess, request: unknown, inputs: readonly TensorMeta[], options: PreprocessOptions = {}, carried?: Record<string, HostTensor>): Promise<Preprocessed> {
  if (request === null || typeof request !== 'object') throw invalidInput('a request must be an object with one of "features", "image" or "inputs"');
  const kinds = (['features', 'image', 'inputs'] as const).filter((k) => (request as Record<string, unknown>)[k] !== undefined);
  if (kinds.length !== 1) throw invalidInput(`a request needs exactly one of "features", "image" or "inputs" (got ${kinds.length ? kinds.join(', ') : 'none'})`);
  const kind = kinds[0];
  const value = (request as Record<string, unknown>)[kind];

  if (spec.type === 'tensor') {
    if (kind !== 'inputs') throw invalidInput(`this model takes "inputs" (named tensors; its preprocessing is tensor), not "${kind}"`);
    return { feeds: preprocessTensor(spec, value, inputs, carried), batch: true };
  }
  if (kind === 'inputs') {
    // Explicit dims carry their own batch axis: always answered as a batch.
    return { feeds: tensorsFromJson(value, inputs), batch: true };
  }
  const want = spec.type === 'tabular' ? 'features' : 'image';
  if (kind !== want) throw invalidInput(`this model takes "${want}" (its preprocessing is ${spec.type}), not "${kind}"`);
  const meta = inputs.find((m) => m.name === spec.input);
  if (!meta?.type) throw invalidInput(`the model has no tensor input "${spec.input}" named by its preprocessing spec`);

  if (spec.type === 'tabular') {
    const r = preprocessTabular(spec, value, options.tabular);
    // The feed's buffer is transferred to the worker, so the values kept for statistics are a copy
    // (rows × features floats: negligible next to a thread hop).
    const data = meta.type === 'float32' ? r.data.slice() : castFloat32(r.data, meta.type, 'features');
    return { feeds: { [r.input]: { type: meta.type, dims: r.dims, data } }, batch: r.batch, quality: r.quality, features: r.data };
  }
  const r = await preprocessImage(spec, value, options.image);
  return { feeds: { [r.input]: { type: meta.type, dims: r.dims, data: castFloat32(r.data, meta.type, 'image') } }, batch: r.batch, pixels: r.pixels };
}
