/**
 * The plain tensor shape the runtime passes between threads and to callers: element type, dims and a
 * typed array. It is what `ort.Tensor` exposes (`type`, `dims`, `data`), so an ort tensor can be passed
 * where a `HostTensor` is expected, but it needs no onnxruntime on the main thread.
 *
 * @example
 * const feeds = { features: { type: 'float32', dims: [1, 8], data: new Float32Array(8) } };
 * checkFeeds(handle.inputs, feeds); // throws INVALID_INPUT naming the input and the problem
 */
import { fromFloat16Bits, toFloat16Bits } from '../../firmware-bundles/float16.ts';
import { invalidInput } from './errors.ts';

/** Element types the runtime moves around (onnxruntime's names). */
export type TensorType = 'float32' | 'float64' | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64' | 'bool' | 'string' | 'float16';

export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | string[];

/** A tensor as the runtime carries it. */
export interface HostTensor {
  type: TensorType | string;
  dims: readonly number[];
  data: TensorData;
}

/** A model input or output as the session describes it; string dims are symbolic (e.g. `batch`). */
export interface TensorMeta {
  name: string;
  isTensor: boolean;
  type?: string;
  shape?: ReadonlyArray<number | string>;
}

const ARRAY_OF: Record<string, new (n: number) => Exclude<TensorData, string[]>> = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
  float16: Uint16Array,
};

/** Number of elements of a shape. */
export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** `float32 [batch, 8]`, for messages. */
export function describeMeta(meta: TensorMeta): string {
  return meta.isTensor ? `${meta.type} [${(meta.shape ?? []).join(', ')}]` : 'non-tensor';
}

/**
 * Checks feeds against the model's inputs: every input present, no unknown names, element type,
 * rank, fixed dims, and element count. Throws INVALID_INPUT with a message naming the input.
 * Runs on both sides of the worker boundary (cheap): on the main thread to fail without a round
 * trip, in the worker because it is the last line before native code.
 */
export function checkFeeds(inputs: readonly TensorMeta[], feeds: Record<string, HostTensor>): void {
  for (const name of Object.keys(feeds)) {
    if (!inputs.some((m) => m.name === name)) {
      throw invalidInput(`unknown input "${name}"; the model's inputs are ${inputs.map((m) => `"${m.name}"`).join(', ')}`, { input: name });
    }
  }
  for (const meta of inputs) {
    const t = feeds[meta.name];
    if (t === undefined) throw invalidInput(`missing input "${meta.name}" (${describeMeta(meta)})`, { input: meta.name });
    if (!meta.isTensor) continue; // sequences/maps: nothing we can check here, onnxruntime will
    const where = `input "${meta.name}"`;
    if (t === null || typeof t !== 'object' || !Array.isArray(t.dims)) throw invalidInput(`${where} is not a tensor`, { input: meta.name });
    if (t.type !== meta.type) throw invalidInput(`${where} has element type ${t.type}, the model expects ${meta.type}`, { input: meta.name });
    const want = ARRAY_OF[t.type];
    if (t.type === 'string' ? !Array.isArray(t.data) : !(want && t.data instanceof want)) {
      throw invalidInput(`${where}: data is not a ${want?.name ?? 'string array'} for element type ${t.type}`, { input: meta.name });
    }
    checkDims(meta, t.dims, t.data.length);
  }
}

/** Rank, fixed dims and element count of one input. */
export function checkDims(meta: TensorMeta, dims: readonly unknown[], length: number): void {
  const shape = meta.shape ?? [];
  const where = `input "${meta.name}"`;
  for (const d of dims) {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) throw invalidInput(`${where}: dims must be non-negative integers, got [${dims.join(', ')}]`, { input: meta.name });
  }
  const given = dims as number[];
  // An unknown shape (empty metadata) on a non-scalar input means the model did not declare one.
  if (shape.length > 0 || given.length === 0) {
    if (given.length !== shape.length) {
      throw invalidInput(`${where} has shape [${given.join(', ')}] (rank ${given.length}), the model expects [${shape.join(', ')}] (rank ${shape.length})`, { input: meta.name, dims: given, expected: shape });
    }
    shape.forEach((want, i) => {
      if (typeof want === 'number' && want >= 0 && given[i] !== want) {
        throw invalidInput(`${where} has shape [${given.join(', ')}], the model expects [${shape.join(', ')}] (dim ${i} must be ${want})`, { input: meta.name, dims: given, expected: shape });
      }
    });
  }
  const n = elementCount(given);
  if (n !== length) throw invalidInput(`${where}: shape [${given.join(', ')}] needs ${n} values, got ${length}`, { input: meta.name, dims: given });
}

/**
 * Converts plain numbers (JSON) to the typed array of an element type. Integer types refuse
 * non-integers and values outside their range (silent wrap-around would be a wrong answer).
 */
export function typedFromNumbers(type: string, values: ArrayLike<unknown>, what: string): Exclude<TensorData, string[]> {
  const Ctor = ARRAY_OF[type];
  if (!Ctor) throw invalidInput(`${what}: element type ${type} cannot be given as JSON numbers`);
  if (type === 'float16') return float16FromNumbers(values, what);
  const n = values.length;
  const out = new Ctor(n);
  const isInt = !(type === 'float32' || type === 'float64');
  const [lo, hi] = INT_RANGE[type] ?? [-Infinity, Infinity];
  for (let i = 0; i < n; i++) {
    let v = values[i];
    if (type === 'bool' && typeof v === 'boolean') v = v ? 1 : 0;
    if (typeof v !== 'number' || Number.isNaN(v)) throw invalidInput(`${what}: value ${i} is ${JSON.stringify(v) ?? String(v)}, expected a number`, { index: i });
    if (isInt && (!Number.isInteger(v) || v < lo || v > hi)) throw invalidInput(`${what}: value ${i} (${v}) is not a valid ${type}`, { index: i });
    if (out instanceof BigInt64Array || out instanceof BigUint64Array) out[i] = BigInt(v);
    else out[i] = type === 'bool' ? (v ? 1 : 0) : v;
  }
  return out;
}

/** float16 inputs: callers send numbers, onnxruntime takes half-precision bit patterns. */
function float16FromNumbers(values: ArrayLike<unknown>, what: string): Uint16Array {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'number' || Number.isNaN(v)) throw invalidInput(`${what}: value ${i} is ${JSON.stringify(v) ?? String(v)}, expected a number`, { index: i });
  }
  return toFloat16Bits(values as ArrayLike<number>);
}

/**
 * float16 outputs as float32 numbers, so answers, postprocessing and statistics see values rather
 * than bit patterns; other tensors are returned as they are.
 */
export function widenFloat16(t: HostTensor): HostTensor {
  if (t.type !== 'float16') return t;
  return { type: 'float32', dims: t.dims, data: Float32Array.from(fromFloat16Bits(t.data as Uint16Array)) };
}

const INT_RANGE: Record<string, [number, number]> = {
  int8: [-128, 127],
  uint8: [0, 255],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint64: [0, Number.MAX_SAFE_INTEGER],
  bool: [0, 1],
};

/**
 * Casts a float32 tensor (what preprocessing produces) to the element type the model declares,
 * e.g. int64 for a tabular model with categorical indices. Same type: returned as is, no copy.
 */
export function castFloat32(data: Float32Array, type: string, what: string): Exclude<TensorData, string[]> {
  if (type === 'float32') return data;
  if (type === 'float64') return Float64Array.from(data);
  return typedFromNumbers(type, data, what);
}

/**
 * Below this size a tensor's bytes travel inside the message (copied by the structured clone)
 * rather than transferred: a transfer detaches the buffer and builds a new one on the other side,
 * which costs more than copying a few hundred bytes (≈ 3–5 µs a round trip for a 32-byte input
 * and a 12-byte output, measured here; agent/README.md, "Local API latency").
 */
export const TRANSFER_MIN_BYTES = 4096;

/**
 * The ArrayBuffers to transfer (not copy) when posting these tensors. A view that does not cover
 * its whole buffer (a slice of Node's Buffer pool, a subarray) is first copied into its own
 * buffer: transferring the shared one would detach memory the caller still uses, and cloning a
 * view copies its whole underlying buffer anyway. Mutates `tensors` in place for those copies.
 * Tensors under TRANSFER_MIN_BYTES are left to the clone (the caller's buffer stays attached).
 */
export function prepareTransfer(tensors: Record<string, HostTensor>, transfer: ArrayBuffer[]): void {
  for (const name in tensors) {
    const t = tensors[name];
    const data = t.data;
    if (Array.isArray(data)) continue;
    const buf = data.buffer;
    if (!(buf instanceof ArrayBuffer)) continue; // SharedArrayBuffer: shared by reference anyway
    const whole = data.byteOffset === 0 && data.byteLength === buf.byteLength;
    if (data.byteLength < TRANSFER_MIN_BYTES) {
      if (!whole) tensors[name] = { type: t.type, dims: t.dims, data: data.slice() as typeof data };
    } else if (!whole) {
      const own = data.slice() as typeof data; // slice() copies into a fresh buffer of exact size
      tensors[name] = { type: t.type, dims: t.dims, data: own };
      transfer.push(own.buffer as ArrayBuffer);
    } else if (!transfer.includes(buf)) {
      transfer.push(buf);
    }
  }
}
