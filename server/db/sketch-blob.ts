// The stored form of a `FeatureSetSketch` (raw `stats` windows and their rollups): a small JSON
// header with the structure (feature names, kinds, categories, edge counts) and then every number as
// a little-endian float64. About half the bytes of the sketch's JSON text, and no number is turned
// into text and back: formatting and parsing doubles was most of ingest's `JSON.stringify`/`parse`
// cost. Self-describing (edges included), so a stored sketch is read without its reference, merges
// keep refusing other layouts, and rows stored before (JSON text) are still read.
//
// Layout: 0xFB, version 1, u32 header length, header (UTF-8 JSON), zero padding to a multiple of 8,
// then float64s: quality (rows, missing, extra, wrongType, outOfRange, nans), then per feature and per
// output in header order — numeric: edges, bins, sums, count, nulls, nans, outOfRange, min, max, mean,
// m2 (min/max NaN for null); categorical: counts, other, nulls, count.
import { customType } from 'drizzle-orm/sqlite-core';
import type { CategoricalSketch } from '../../protocol/sketch/categorical-sketch.ts';
import type { FeatureSetSketch, FeatureSketch } from '../../protocol/sketch/feature-set-sketch.ts';
import type { NumericSketch } from '../../protocol/sketch/numeric-sketch.ts';

const MAGIC = 0xfb;
const VERSION = 1;
const OUTPUTS = ['predictedClass', 'confidence', 'value'] as const;

/** [name, 'n', edge count] or [name, 'c', categories]. */
type Entry = [string, 'n', number] | [string, 'c', string[]];
interface Header {
  f: Entry[];
  o: Entry[];
}

const entry = (name: string, s: FeatureSketch): Entry => (s.kind === 'numeric' ? [name, 'n', s.edges.length] : [name, 'c', s.categories]);
const size = (e: Entry) => (e[1] === 'n' ? 3 * e[2] + 10 : e[2].length + 3);

function put(out: Float64Array, at: number, s: FeatureSketch): number {
  if (s.kind === 'numeric') {
    out.set(s.edges, at);
    at += s.edges.length;
    out.set(s.bins, at);
    at += s.bins.length;
    out.set(s.sums, at);
    at += s.sums.length;
    out[at++] = s.count;
    out[at++] = s.nulls;
    out[at++] = s.nans;
    out[at++] = s.outOfRange;
    out[at++] = s.min ?? NaN;
    out[at++] = s.max ?? NaN;
    out[at++] = s.mean;
    out[at++] = s.m2;
    return at;
  }
  out.set(s.counts, at);
  at += s.counts.length;
  out[at++] = s.other;
  out[at++] = s.nulls;
  out[at++] = s.count;
  return at;
}

/** The stored bytes of a sketch. */
export function encodeSketch(s: FeatureSetSketch): Buffer {
  const header: Header = { f: [], o: [] };
  for (const name in s.features) header.f.push(entry(name, s.features[name]));
  for (const name of OUTPUTS) if (s.outputs[name]) header.o.push(entry(name, s.outputs[name]!));
  const text = Buffer.from(JSON.stringify(header));
  const start = Math.ceil((6 + text.length) / 8) * 8;
  const count = 6 + [...header.f, ...header.o].reduce((n, e) => n + size(e), 0);
  const buf = Buffer.alloc(start + count * 8);
  buf[0] = MAGIC;
  buf[1] = VERSION;
  buf.writeUInt32LE(text.length, 2);
  text.copy(buf, 6);
  // The buffer is its own allocation (alloc, not the shared pool), so a float64 view at an 8-byte offset is aligned.
  const nums = new Float64Array(buf.buffer, buf.byteOffset + start, count);
  const q = s.quality;
  nums.set([q.rows, q.schemaViolations.missing, q.schemaViolations.extra, q.schemaViolations.wrongType, q.outOfRange, q.nans]);
  let at = 6;
  for (const name in s.features) at = put(nums, at, s.features[name]);
  for (const name of OUTPUTS) if (s.outputs[name]) at = put(nums, at, s.outputs[name]!);
  return buf;
}

function take(nums: Float64Array, at: number, e: Entry): [FeatureSketch, number] {
  const arr = (n: number) => Array.from(nums.subarray(at, (at += n)));
  if (e[1] === 'n') {
    const edges = arr(e[2]);
    const bins = arr(e[2] + 1);
    const sums = arr(e[2] + 1);
    const [count, nulls, nans, outOfRange, min, max, mean, m2] = arr(8);
    const s: NumericSketch = { kind: 'numeric', edges, bins, sums, count, nulls, nans, outOfRange, min: Number.isNaN(min) ? null : min, max: Number.isNaN(max) ? null : max, mean, m2 };
    return [s, at];
  }
  const counts = arr(e[2].length);
  const [other, nulls, count] = arr(3);
  const s: CategoricalSketch = { kind: 'categorical', categories: e[2].slice(), counts, other, nulls, count };
  return [s, at];
}

/** A sketch from its stored bytes. */
export function decodeSketch(bytes: Uint8Array): FeatureSetSketch {
  if (bytes[0] !== MAGIC || bytes[1] !== VERSION) throw new Error(`not a stored sketch (first bytes ${bytes[0]}, ${bytes[1]})`);
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.readUInt32LE(2);
  const header = JSON.parse(view.toString('utf8', 6, 6 + length)) as Header;
  const start = Math.ceil((6 + length) / 8) * 8;
  // Copied into an aligned array: the driver's buffer may start anywhere.
  const nums = new Float64Array(bytes.buffer.slice(bytes.byteOffset + start, bytes.byteOffset + bytes.byteLength));
  const [rows, missing, extra, wrongType, outOfRange, nans] = nums.subarray(0, 6);
  let at = 6;
  const features: Record<string, FeatureSketch> = {};
  for (const e of header.f) [features[e[0]], at] = take(nums, at, e);
  const outputs: FeatureSetSketch['outputs'] = {};
  for (const e of header.o) {
    const [s, next] = take(nums, at, e);
    at = next;
    if (e[0] === 'predictedClass') outputs.predictedClass = s as CategoricalSketch;
    else if (e[0] === 'confidence') outputs.confidence = s as NumericSketch;
    else outputs.value = s as NumericSketch;
  }
  return { features, outputs, quality: { rows, schemaViolations: { missing, extra, wrongType }, outOfRange, nans } };
}

/** A stored sketch as the driver returns it: bytes, or JSON text for rows written before the binary form. */
export function readStoredSketch(value: unknown): FeatureSetSketch {
  if (typeof value === 'string') return JSON.parse(value) as FeatureSetSketch;
  if (value instanceof ArrayBuffer) return decodeSketch(new Uint8Array(value));
  if (value instanceof Uint8Array) return decodeSketch(value);
  throw new Error(`unexpected stored sketch of type ${typeof value}`);
}

/** The schema's sketch column: a blob written by `encodeSketch`, read by `readStoredSketch`. */
export const sketchColumn = customType<{ data: FeatureSetSketch; driverData: Buffer }>({
  dataType: () => 'blob',
  toDriver: (s) => encodeSketch(s),
  fromDriver: (v) => readStoredSketch(v),
});
