/**
 * Adapts an onnxruntime-node session to the plain `{ dims, data }` tensors smoke vectors use, so the
 * builder (recording) and the agent (checking) feed and read the model the same way.
 *
 * @example
 * const session = await ort.InferenceSession.create(modelBytes);
 * const result = await runSmokeVectors(createOrtRunner(session), vectors, tolerance);
 */
import * as ort from 'onnxruntime-node';
import { fromFloat16Bits, toFloat16Bits } from './float16.ts';
import type { SmokeRunner } from './smoke.ts';

/**
 * A smoke runner over a session. Inputs are converted to the element type the model declares;
 * numeric and bool tensor outputs come back as numbers; other outputs (strings, maps, sequences) are
 * left out because they cannot be compared with a tolerance.
 *
 * @example
 * const outputs = await createOrtRunner(session)({ features: { dims: [1, 8], data: [0, 1, 2, 3, 4, 5, 6, 7] } });
 */
export function createOrtRunner(session: ort.InferenceSession): SmokeRunner {
  const types = new Map<string, string>();
  for (const meta of session.inputMetadata) if (meta.isTensor) types.set(meta.name, meta.type);
  return async (feeds) => {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = toTensor(types.get(name) ?? 'float32', t.data, t.dims);
    const out = await session.run(ortFeeds);
    const result: Record<string, { dims: number[]; data: number[] }> = {};
    for (const [name, value] of Object.entries(out)) {
      if (!(value instanceof ort.Tensor) || value.type === 'string') continue;
      const data = value.type === 'float16' ? fromFloat16Bits(value.data as Uint16Array) : Array.from(value.data as ArrayLike<number | bigint | boolean>, Number);
      result[name] = { dims: [...value.dims], data };
    }
    return result;
  };
}

/**
 * An ort tensor of the given element type from plain numbers.
 *
 * @example
 * toTensor('int64', [1, 2], [1, 2]) // BigInt64Array-backed tensor
 */
export function toTensor(type: string, data: ArrayLike<number>, dims: readonly number[]): ort.Tensor {
  switch (type) {
    case 'float32':
      return new ort.Tensor('float32', Float32Array.from(data), dims);
    case 'float64':
      return new ort.Tensor('float64', Float64Array.from(data), dims);
    case 'int32':
      return new ort.Tensor('int32', Int32Array.from(data), dims);
    case 'int64':
      return new ort.Tensor('int64', BigInt64Array.from(Array.from(data, (v) => BigInt(Math.round(v)))), dims);
    case 'float16':
      // onnxruntime-node takes float16 as bit patterns (Node 20 has no Float16Array).
      return new ort.Tensor('float16', toFloat16Bits(data), dims);
    case 'uint8':
      return new ort.Tensor('uint8', Uint8Array.from(data), dims);
    case 'bool':
      return new ort.Tensor('bool', Uint8Array.from(data, (v) => (v ? 1 : 0)), dims);
    default:
      throw new TypeError(`unsupported input element type ${type}`);
  }
}
