/**
 * Tensors given directly as JSON, `{ inputs: { name: { dims, data } } }` — for callers that do their
 * own preprocessing, and for smoke vectors. Each is checked against the model's input metadata
 * (name, rank, fixed dims, element count, value range of integer types) and converted to the typed
 * array of the element type the model declares.
 *
 * @example
 * tensorsFromJson({ features: { dims: [1, 8], data: [0, 1, 2, 3, 4, 5, 6, 7] } }, handle.inputs)
 * // { features: { type: 'float32', dims: [1, 8], data: Float32Array(8) } }
 */
import { invalidInput } from './errors.ts';
import { checkDims, describeMeta, typedFromNumbers, type HostTensor, type TensorMeta } from './tensor.ts';

/** A tensor as JSON: dims and flat row-major data; `type`, if given, must be the model's. */
export interface JsonTensor {
  dims: number[];
  data: ArrayLike<number | boolean>;
  type?: string;
}

export function tensorsFromJson(inputs: unknown, metas: readonly TensorMeta[]): Record<string, HostTensor> {
  if (inputs === null || typeof inputs !== 'object' || Array.isArray(inputs)) {
    throw invalidInput('inputs must be an object of named tensors: { "<input>": { "dims": [...], "data": [...] } }');
  }
  const given = inputs as Record<string, unknown>;
  const feeds: Record<string, HostTensor> = {};
  for (const name of Object.keys(given)) {
    if (!metas.some((m) => m.name === name)) throw invalidInput(`unknown input "${name}"; the model's inputs are ${metas.map((m) => `"${m.name}"`).join(', ')}`, { input: name });
  }
  for (const meta of metas) {
    const t = given[meta.name];
    if (t === undefined) throw invalidInput(`missing input "${meta.name}" (${describeMeta(meta)})`, { input: meta.name });
    if (!meta.isTensor || !meta.type) throw invalidInput(`input "${meta.name}" is not a tensor and cannot be given as JSON`, { input: meta.name });
    if (t === null || typeof t !== 'object') throw invalidInput(`input "${meta.name}" must be { dims, data }`, { input: meta.name });
    const { dims, data, type } = t as Partial<JsonTensor>;
    if (!Array.isArray(dims)) throw invalidInput(`input "${meta.name}": dims must be an array of integers`, { input: meta.name });
    if (!Array.isArray(data) && !ArrayBuffer.isView(data)) throw invalidInput(`input "${meta.name}": data must be a flat array of numbers`, { input: meta.name });
    if (type !== undefined && type !== meta.type) throw invalidInput(`input "${meta.name}" has element type ${type}, the model expects ${meta.type}`, { input: meta.name });
    const values = data as ArrayLike<unknown>;
    checkDims(meta, dims, values.length);
    if (Array.isArray(values) && values.some(Array.isArray)) throw invalidInput(`input "${meta.name}": data must be flat (row-major), not nested`, { input: meta.name });
    feeds[meta.name] = { type: meta.type, dims: [...dims], data: typedFromNumbers(meta.type, values, `input "${meta.name}"`) };
  }
  return feeds;
}
