/**
 * numpy's `.npy` format read in TypeScript (format versions 1–3): the magic `\x93NUMPY`, a header
 * that is a Python dict literal (`descr`, `fortran_order`, `shape`), then the raw little- or
 * big-endian array. Numbers come back as a Float64Array in C order (int64 values beyond 2^53 lose
 * precision, which no model input of ours needs); `bool`/integers keep their values. Object arrays
 * (pickles) are refused: they are code, not data.
 *
 * @example
 * const arr = parseNpy(bytes); // { dtype: 'float32', shape: [200, 512], data: Float64Array(102400) }
 */
import { Invalid } from '../errors.ts';

export interface NpyArray {
  /** The model element type this maps to. */
  dtype: 'float16' | 'float32' | 'float64' | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64' | 'bool';
  shape: number[];
  data: Float64Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

const KINDS: Record<string, { dtype: NpyArray['dtype']; size: number }> = {
  f2: { dtype: 'float16', size: 2 },
  f4: { dtype: 'float32', size: 4 },
  f8: { dtype: 'float64', size: 8 },
  i1: { dtype: 'int8', size: 1 },
  u1: { dtype: 'uint8', size: 1 },
  i2: { dtype: 'int16', size: 2 },
  u2: { dtype: 'uint16', size: 2 },
  i4: { dtype: 'int32', size: 4 },
  u4: { dtype: 'uint32', size: 4 },
  i8: { dtype: 'int64', size: 8 },
  u8: { dtype: 'uint64', size: 8 },
  b1: { dtype: 'bool', size: 1 },
};

/** Parses one `.npy` file; `name` labels error messages (an `.npz` member). */
export function parseNpy(bytes: Uint8Array, name = 'the .npy file'): NpyArray {
  if (bytes.length < 10 || !MAGIC.every((b, i) => bytes[i] === b)) throw Invalid(`${name} is not a numpy .npy array (no \\x93NUMPY magic)`);
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw Invalid(`${name}: truncated header`);
    headerLen = view.getUint32(8, true);
    start = 12;
  } else {
    throw Invalid(`${name}: .npy format version ${major} is not supported (1–3 are)`);
  }
  if (start + headerLen > bytes.length) throw Invalid(`${name}: truncated header`);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([<>|=])([a-z]\d+)'/.exec(header);
  const order = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !order || !shapeText) throw Invalid(`${name}: unreadable header ${JSON.stringify(header.trim().slice(0, 120))} (structured and object arrays are not supported)`);
  const kind = KINDS[descr[2]];
  if (!kind) throw Invalid(`${name}: dtype ${descr[1]}${descr[2]} is not supported (float16/32/64, int8–64, uint8–64 and bool are)`);
  const shape = shapeText[1]
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw Invalid(`${name}: bad shape (${shapeText[1]})`);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  if (bytes.length - offset < count * kind.size) throw Invalid(`${name}: ${bytes.length - offset} data bytes for ${count} values of ${kind.size} bytes`);
  const little = descr[1] !== '>';
  const data = new Float64Array(count);
  for (let i = 0; i < count; i++) data[i] = read(view, offset + i * kind.size, kind.dtype, little);
  return { dtype: kind.dtype, shape, data: order[1] === 'True' ? toCOrder(data, shape) : data };
}

function read(view: DataView, at: number, dtype: NpyArray['dtype'], little: boolean): number {
  switch (dtype) {
    case 'float16':
      return half(view.getUint16(at, little));
    case 'float32':
      return view.getFloat32(at, little);
    case 'float64':
      return view.getFloat64(at, little);
    case 'int8':
      return view.getInt8(at);
    case 'uint8':
      return view.getUint8(at);
    case 'bool':
      return view.getUint8(at) ? 1 : 0;
    case 'int16':
      return view.getInt16(at, little);
    case 'uint16':
      return view.getUint16(at, little);
    case 'int32':
      return view.getInt32(at, little);
    case 'uint32':
      return view.getUint32(at, little);
    case 'int64':
      return Number(view.getBigInt64(at, little));
    case 'uint64':
      return Number(view.getBigUint64(at, little));
  }
}

function half(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Fortran (column-major) order → C (row-major) order. */
function toCOrder(data: Float64Array, shape: number[]): Float64Array {
  const out = new Float64Array(data.length);
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  for (let c = 0; c < data.length; c++) {
    let f = 0;
    let stride = 1;
    for (let k = 0; k < rank; k++) {
      f += idx[k] * stride;
      stride *= shape[k];
    }
    out[c] = data[f];
    for (let k = rank - 1; k >= 0; k--) {
      if (++idx[k] < shape[k]) break;
      idx[k] = 0;
    }
  }
  return out;
}

/** Writes a little-endian C-order `.npy` (version 1): for tests and for exporting what the server stores. */
export function encodeNpy(arr: { dtype: 'float32' | 'float64' | 'int64' | 'int32'; shape: number[]; data: ArrayLike<number> }): Uint8Array {
  const code = { float32: '<f4', float64: '<f8', int64: '<i8', int32: '<i4' }[arr.dtype];
  const size = { float32: 4, float64: 8, int64: 8, int32: 4 }[arr.dtype];
  let header = `{'descr': '${code}', 'fortran_order': False, 'shape': (${arr.shape.join(', ')}${arr.shape.length === 1 ? ',' : ''}), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const out = new Uint8Array(10 + header.length + arr.data.length * size);
  out.set(MAGIC);
  out[6] = 1;
  const view = new DataView(out.buffer);
  view.setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  const at = 10 + header.length;
  for (let i = 0; i < arr.data.length; i++) {
    const v = arr.data[i];
    if (arr.dtype === 'float32') view.setFloat32(at + i * 4, v, true);
    else if (arr.dtype === 'float64') view.setFloat64(at + i * 8, v, true);
    else if (arr.dtype === 'int64') view.setBigInt64(at + i * 8, BigInt(Math.round(v)), true);
    else view.setInt32(at + i * 4, v, true);
  }
  return out;
}
