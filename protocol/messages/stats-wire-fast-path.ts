/**
 * Hand-written acceptance of a `stats` window sent as `sketchBase64` (stats-wire.ts), checked on its
 * numbers as they arrived, without decoding the sketch into objects: the ingest hot path. Decoding a
 * window into ≈ 25 arrays and objects, rebuilding them in the fast path, and holding them until the
 * batch commits made most of ingest's garbage (promoted, since a batch lives for hundreds of ms).
 *
 * Like stats-fast-path.ts it answers only "accepted, certainly" or "ask the full check": it makes the
 * same checks as `validateStatsMessage` (sketchFromWire, fastStatsMessage, device and clock) on the
 * same numbers in the same arithmetic, and on anything it is not sure of it answers `null`, so every
 * refusal keeps its reason from the full check (stats-wire-fast-path.test.ts holds it to that).
 *
 * @example
 * const w = fastWireStats(raw, { deviceId }) ?? validateStatsMessage(raw, { deviceId });
 */
import type { SketchLayout } from '../sketch/feature-set-sketch.ts';
import { sketchNumbersView } from '../sketch/sketch-blob-merge.ts';
import { sketchNumbersLayout, SketchBytesError, type SketchNumbersLayout } from '../sketch/sketch-blob.ts';
import { DEVICE_ID_PATTERN } from '../topics.ts';
import { count, finite, isoTime, plainWithKeys, str, type FastStatsMessage } from './stats-fast-path.ts';

/** A `stats` window accepted on its bytes: the message's fields but the sketch, and the sketch's stored form. */
export interface WireStatsWindow extends Omit<FastStatsMessage, 'v' | 'sketch'> {
  /** The sketch as received: what is stored. */
  bytes: Buffer;
  layout: SketchNumbersLayout;
  /** quality.rows */
  rows: number;
}

const WIRE_KEYS = new Set(['v', 'deviceId', 'bundleId', 'model', 'windowStart', 'windowEnd', 'seq', 'sketchBase64']);
const MODEL_KEYS = new Set(['name', 'version']);
const QUALITY = 6;

/** Bytes of the NaN `encodeSketch` writes for a null min/max (decodeSketch refuses any other NaN). */
const canonicalNaN = new Uint8Array(new Float64Array([NaN]).buffer);
const nanBits = new Uint8Array(8);
const nanView = new Float64Array(nanBits.buffer);
function canonicalNull(x: number): boolean {
  nanView[0] = x;
  for (let i = 0; i < 8; i++) if (nanBits[i] !== canonicalNaN[i]) return false;
  return true;
}

/** A null min/max (canonical NaN) as null, a finite number as itself, anything else undefined (not sure). */
function extreme(x: number): number | null | undefined {
  if (Number.isNaN(x)) return canonicalNull(x) ? null : undefined;
  return Number.isFinite(x) ? x : undefined;
}

/** A numeric entry's checks (stats-fast-path.ts `numeric`), on nums[at…]: its seen rows, or -1. */
function numeric(nums: Float64Array, at: number, E: number): number {
  for (let i = at; i < at + E; i++) if (!finite(nums[i])) return -1;
  for (let i = at + 1; i < at + E; i++) if (!(nums[i] > nums[i - 1])) return -1;
  const b = at + E;
  const s = b + E + 1;
  const c = s + E + 1;
  let binTotal = 0;
  for (let i = b; i < s; i++) {
    const x = nums[i];
    if (!count(x)) return -1;
    binTotal += x;
  }
  for (let i = s; i < c; i++) if (!finite(nums[i])) return -1;
  const n = nums[c];
  const nulls = nums[c + 1];
  const nans = nums[c + 2];
  const outOfRange = nums[c + 3];
  const min = extreme(nums[c + 4]);
  const max = extreme(nums[c + 5]);
  const mean = nums[c + 6];
  const m2 = nums[c + 7];
  if (!count(n) || !count(nulls) || !count(nans) || !count(outOfRange) || !finite(mean) || !finite(m2) || min === undefined || max === undefined) return -1;
  if (binTotal !== n) return -1;
  for (let i = 0; i <= E; i++) {
    const bin = nums[b + i];
    const sum = nums[s + i];
    if (bin === 0) {
      if (sum !== 0) return -1;
      continue;
    }
    const m = sum / bin;
    const lo = i === 0 ? -Infinity : nums[at + i - 1];
    const hi = i === E ? Infinity : nums[at + i];
    const tol = 1e-9 * Math.max(Math.abs(m), 1);
    if (m < lo - tol || m > hi + tol) return -1;
  }
  if (outOfRange > n) return -1;
  if (n === 0) {
    if (min !== null || max !== null || mean !== 0 || m2 !== 0) return -1;
  } else {
    if (min === null || max === null || min > max) return -1;
    const slack = 1e-9 * Math.max(Math.abs(min), Math.abs(max), 1);
    if (mean < min - slack || mean > max + slack || m2 < -slack) return -1;
  }
  return n + nulls + nans;
}

/** A categorical entry's checks on nums[at…] (its categories come from the header): its seen rows, or -1. */
function categorical(nums: Float64Array, at: number, categories: readonly string[]): number {
  if (new Set(categories).size !== categories.length) return -1;
  const k = categories.length;
  let total = 0;
  for (let i = at; i < at + k; i++) {
    const x = nums[i];
    if (!count(x)) return -1;
    total += x;
  }
  const other = nums[at + k];
  const nulls = nums[at + k + 1];
  const n = nums[at + k + 2];
  if (!count(other) || !count(nulls) || !count(n) || total + other !== n) return -1;
  return n + nulls;
}

/** The sketch's numbers pass every check of the object form: its rows, or -1. */
function sketchRows(layout: SketchNumbersLayout, nums: Float64Array): number {
  for (let i = 0; i < QUALITY; i++) if (!count(nums[i])) return -1;
  const rows = nums[0];
  const features = layout.header.f.length;
  for (let j = 0; j < layout.plan.length; j++) {
    const p = layout.plan[j];
    const entry = j < features ? layout.header.f[j] : layout.header.o[j - features];
    const seen = entry[1] === 'n' ? numeric(nums, p.at, p.n) : categorical(nums, p.at, entry[2]);
    if (seen < 0 || (j < features ? seen !== rows : seen > rows)) return -1;
  }
  return rows;
}

export interface WireCheckOptions {
  /** The device id from the topic; the payload must agree. */
  deviceId?: string;
  now?: Date;
  maxClockSkewMs?: number;
}

/**
 * The window, when `raw` is a `sketchBase64` payload `validateStatsMessage` certainly accepts (with
 * no salvage: the binary form has none) under the same options; `null` means "not certain": run it.
 */
export function fastWireStats(raw: unknown, opts: WireCheckOptions = {}): WireStatsWindow | null {
  if (!plainWithKeys(raw, WIRE_KEYS) || raw.v !== 1) return null;
  const { deviceId, bundleId, model, windowStart, windowEnd, seq, sketchBase64: text } = raw;
  if (typeof deviceId !== 'string' || !DEVICE_ID_PATTERN.test(deviceId) || !str(bundleId, 1, 200)) return null;
  if (opts.deviceId !== undefined && deviceId !== opts.deviceId) return null;
  if (!plainWithKeys(model, MODEL_KEYS) || !str(model.name, 1, 200) || typeof model.version !== 'number' || !Number.isSafeInteger(model.version) || model.version <= 0) return null;
  if (!isoTime(windowStart) || !isoTime(windowEnd) || !count(seq)) return null;
  const end = Date.parse(windowEnd);
  if (!(end > Date.parse(windowStart))) return null;
  if (end > (opts.now ?? new Date()).getTime() + (opts.maxClockSkewMs ?? 5 * 60_000)) return null;
  if (typeof text !== 'string' || text.length % 4 !== 0) return null;
  const bytes = Buffer.from(text, 'base64');
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  if (bytes.length !== (text.length / 4) * 3 - padding) return null;
  let layout: SketchNumbersLayout;
  try {
    layout = sketchNumbersLayout(bytes);
  } catch (err) {
    if (err instanceof SketchBytesError) return null;
    throw err;
  }
  const rows = sketchRows(layout, sketchNumbersView(bytes, layout));
  if (rows < 0) return null;
  return { deviceId, bundleId, model: { name: model.name, version: model.version }, windowStart, windowEnd, seq, bytes, layout, rows };
}

const sameStrings = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Whether a sketch's bytes certainly match the reference layout (checkSketchAgainstReference would
 * answer null for the decoded sketch: the same features, kinds, edges, categories and outputs).
 * `false` means "not certain": decode it and ask checkSketchAgainstReference (which names the reason).
 */
export function wireMatchesReference(bytes: Uint8Array, layout: SketchNumbersLayout, reference: SketchLayout): boolean {
  const { f, o } = layout.header;
  if (f.length !== Object.keys(reference.features).length) return false;
  const nums = sketchNumbersView(bytes, layout);
  const edgesEqual = (at: number, edges: readonly number[]) => {
    for (let i = 0; i < edges.length; i++) if (nums[at + i] !== edges[i]) return false;
    return true;
  };
  for (let j = 0; j < f.length; j++) {
    const [name, kind, shape] = f[j];
    if (!Object.hasOwn(reference.features, name)) return false;
    const ref = reference.features[name];
    if (kind === 'n' ? ref.kind !== 'numeric' || ref.edges.length !== shape || !edgesEqual(layout.plan[j].at, ref.edges) : ref.kind !== 'categorical' || !sameStrings(ref.categories, shape)) return false;
  }
  const outputs = o.map((e) => e[0]).join();
  const lo = reference.outputs;
  const at = (k: number) => layout.plan[f.length + k].at;
  if (lo.task === 'classification') {
    const classes = o[0]?.[2];
    return outputs === 'predictedClass,confidence' && Array.isArray(classes) && classes.length === lo.numClasses && classes.every((c, i) => c === String(i));
  }
  if (lo.task === 'regression') return outputs === 'value' && o[0][2] === lo.edges.length && edgesEqual(at(0), lo.edges);
  return outputs === '';
}
