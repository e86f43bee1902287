// The binary form of a `FeatureSetSketch`: what the server stores (raw `stats` windows and their
// rollups) and, base64-encoded, what agents send (`sketchBase64` in `stats`, protocol/messages/stats-wire.ts),
// so the server stores a window's bytes as received. A small JSON header with the structure (feature
// names, kinds, categories, edge counts) and then every number as a little-endian float64. About half
// the bytes of the sketch's JSON text, and no number is turned into text and back: formatting and
// parsing doubles was most of ingest's `JSON.stringify`/`parse` cost. Self-describing (edges included),
// so a stored sketch is read without its reference, merges keep refusing other layouts, and rows stored
// before (JSON text) are still read.
//
// Decoding is strict, since the bytes may come from a device: a header of the wrong shape, a length
// that does not match it, non-zero padding, or any form `encodeSketch` would not have written (header
// text, key order, NaN bits) throws `SketchBytesError`. What decodes therefore re-encodes to the same
// bytes, so a window stored as received equals one the server would have encoded itself.
//
// Layout: 0xFB, version 1, u32 header length, header (UTF-8 JSON), zero padding to a multiple of 8,
// then float64s: quality (rows, missing, extra, wrongType, outOfRange, nans), then per feature and per
// output in header order — numeric: edges, bins, sums, count, nulls, nans, outOfRange, min, max, mean,
// m2 (min/max NaN for null); categorical: counts, other, nulls, count.
import type { CategoricalSketch } from './categorical-sketch.ts';
import type { FeatureSetSketch, FeatureSketch } from './feature-set-sketch.ts';
import type { NumericSketch } from './numeric-sketch.ts';

const MAGIC = 0xfb;
const VERSION = 1;
const OUTPUTS = ['predictedClass', 'confidence', 'value'] as const;

/** [name, 'n', edge count] or [name, 'c', categories]. */
export type SketchEntry = [string, 'n', number] | [string, 'c', string[]];
type Entry = SketchEntry;
/** A stored sketch's structure: its features' and outputs' entries, in order. */
export interface SketchHeader {
  f: Entry[];
  o: Entry[];
}
type Header = SketchHeader;

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

/** Bytes that are not a sketch `encodeSketch` wrote. */
export class SketchBytesError extends Error {
  override readonly name = 'SketchBytesError';
}

/** A checked header: its entries and where the numbers start and how many there are. */
interface Parsed {
  header: Header;
  start: number;
  count: number;
  /** Where each feature's and output's numbers start (after the 6 quality counters), in header order. */
  plan: SketchPlan;
}

/** One entry's numbers: numeric with `n` edges, or categorical with `n` categories, from float index `at`. */
export interface PlanEntry {
  numeric: boolean;
  at: number;
  n: number;
}
export type SketchPlan = readonly PlanEntry[];

/**
 * The layout of a stored sketch's numbers, for code that works on them without decoding
 * (sketch-blob-merge.ts). Two sketches with the same `header` text share one object while the cache
 * keeps it (so `===` is a cheap "same layout"; a miss only means comparing the text).
 */
export interface SketchNumbersLayout {
  /** The header's text: equal texts, equal layouts. */
  readonly text: string;
  /** Byte offset of the float64 numbers, and how many. */
  readonly start: number;
  readonly count: number;
  readonly plan: SketchPlan;
  /** The structure the header names (do not modify: shared by every sketch with this header). */
  readonly header: SketchHeader;
}

function planOf(entries: readonly Entry[]): PlanEntry[] {
  const plan: PlanEntry[] = [];
  let at = 6;
  for (const e of entries) {
    plan.push(e[1] === 'n' ? { numeric: true, at, n: e[2] } : { numeric: false, at, n: e[2].length });
    at += size(e);
  }
  return plan;
}

const MAX_EDGES = 1000;
const MAX_CATEGORIES = 10_000;
const validName = (n: unknown): n is string => typeof n === 'string' && n.length >= 1 && n.length <= 200 && n !== '__proto__';

function validEntry(e: unknown): e is Entry {
  if (!Array.isArray(e) || e.length !== 3 || !validName(e[0])) return false;
  if (e[1] === 'n') return Number.isSafeInteger(e[2]) && e[2] >= 1 && e[2] <= MAX_EDGES;
  return e[1] === 'c' && Array.isArray(e[2]) && e[2].length <= MAX_CATEGORIES && e[2].every((c) => typeof c === 'string');
}

/** The header's shape, and that it is the text `encodeSketch` writes (key order as an object keeps it, outputs in their order). */
function parseHeader(text: string): Parsed {
  let h: unknown;
  try {
    h = JSON.parse(text);
  } catch {
    throw new SketchBytesError('sketch header is not JSON');
  }
  const header = h as Header;
  if (typeof h !== 'object' || h === null || Object.keys(h).join() !== 'f,o' || !Array.isArray(header.f) || !Array.isArray(header.o) || !header.f.every(validEntry) || !header.o.every(validEntry)) {
    throw new SketchBytesError('sketch header has the wrong shape');
  }
  const order = Object.keys(Object.fromEntries(header.f.map((e) => [e[0], 0])));
  if (order.length !== header.f.length || order.some((name, i) => name !== header.f[i][0])) throw new SketchBytesError('sketch header: duplicate feature names or not in key order');
  const outputs = header.o.map((e) => e[0]);
  const expected = OUTPUTS.filter((o) => outputs.includes(o));
  if (expected.join() !== outputs.join() || header.o.some((e) => e[1] !== (e[0] === 'predictedClass' ? 'c' : 'n'))) throw new SketchBytesError('sketch header: unknown, repeated or misordered outputs');
  if (JSON.stringify(header) !== text) throw new SketchBytesError('sketch header is not in its canonical form');
  const entries = [...header.f, ...header.o];
  return { header, start: Math.ceil((6 + Buffer.byteLength(text)) / 8) * 8, count: 6 + entries.reduce((n, e) => n + size(e), 0), plan: planOf(entries) };
}

// A fleet sends few distinct layouts: each header text is checked once (bounded, emptied when full).
const HEADER_CACHE_MAX = 256;
const headers = new Map<string, Parsed & { text: string }>();
function headerOf(text: string): Parsed & { text: string } {
  let p = headers.get(text);
  if (!p) {
    p = { ...parseHeader(text), text };
    if (headers.size >= HEADER_CACHE_MAX) headers.clear();
    headers.set(text, p);
  }
  return p;
}

const canonicalNaN = new Uint8Array(new Float64Array([NaN]).buffer);
/** min/max are NaN for null: only the NaN `encodeSketch` writes. */
function minMax(nums: Float64Array, at: number): number | null {
  const v = nums[at];
  if (!Number.isNaN(v)) return v;
  const bytes = new Uint8Array(nums.buffer, nums.byteOffset + at * 8, 8);
  for (let i = 0; i < 8; i++) if (bytes[i] !== canonicalNaN[i]) throw new SketchBytesError('sketch has a non-canonical NaN');
  return null;
}

/** nums[at, at + n) as a plain array (a loop: Array.from on a typed array goes through its iterator, several times slower). */
function slice(nums: Float64Array, at: number, n: number): number[] {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = nums[at + i];
  return out;
}

function take(nums: Float64Array, at: number, e: Entry): [FeatureSketch, number] {
  if (e[1] === 'n') {
    const E = e[2];
    const edges = slice(nums, at, E);
    const bins = slice(nums, at + E, E + 1);
    const sums = slice(nums, at + 2 * E + 1, E + 1);
    at += 3 * E + 2;
    const s: NumericSketch = {
      kind: 'numeric',
      edges,
      bins,
      sums,
      count: nums[at],
      nulls: nums[at + 1],
      nans: nums[at + 2],
      outOfRange: nums[at + 3],
      min: minMax(nums, at + 4),
      max: minMax(nums, at + 5),
      mean: nums[at + 6],
      m2: nums[at + 7],
    };
    return [s, at + 8];
  }
  const n = e[2].length;
  const s: CategoricalSketch = { kind: 'categorical', categories: e[2].slice(), counts: slice(nums, at, n), other: nums[at + n], nulls: nums[at + n + 1], count: nums[at + n + 2] };
  return [s, at + n + 3];
}

/** The checked header of a stored sketch and its text; throws `SketchBytesError` like decodeSketch. */
function checkedHeader(bytes: Uint8Array): Parsed & { text: string } {
  if (bytes.length < 6 || bytes[0] !== MAGIC || bytes[1] !== VERSION) throw new SketchBytesError(`not a stored sketch (first bytes ${bytes[0]}, ${bytes[1]})`);
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.readUInt32LE(2);
  if (6 + length > bytes.length) throw new SketchBytesError('sketch header runs past the end');
  const text = view.toString('utf8', 6, 6 + length);
  // Invalid UTF-8 decodes to U+FFFD and would re-encode to other bytes.
  if (Buffer.byteLength(text) !== length) throw new SketchBytesError('sketch header is not UTF-8');
  const parsed = headerOf(text);
  const { start, count } = parsed;
  if (bytes.length !== start + count * 8) throw new SketchBytesError(`sketch is ${bytes.length} bytes, its header says ${start + count * 8}`);
  for (let i = 6 + length; i < start; i++) if (bytes[i] !== 0) throw new SketchBytesError('sketch padding is not zero');
  return parsed;
}

/** The numbers' layout of a stored sketch (its header checked as decodeSketch checks it). */
export function sketchNumbersLayout(bytes: Uint8Array): SketchNumbersLayout {
  return checkedHeader(bytes);
}

/** A sketch from its binary form; throws `SketchBytesError` for anything `encodeSketch` would not have written. */
export function decodeSketch(bytes: Uint8Array): FeatureSetSketch {
  const { header, start } = checkedHeader(bytes);
  // Copied into an aligned array: the driver's (or base64 decoder's) buffer may start anywhere.
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
  const bytes = storedSketchBytes(value);
  if (bytes) return decodeSketch(bytes);
  throw new Error(`unexpected stored sketch of type ${typeof value}`);
}

/** A sketch column's value in its binary form (the driver gives a blob as either type), or null (JSON text). */
export function storedSketchBytes(value: unknown): Uint8Array | null {
  return value instanceof Uint8Array ? value : value instanceof ArrayBuffer ? new Uint8Array(value) : null;
}
