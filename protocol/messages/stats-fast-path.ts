/**
 * Hand-written acceptance check for the `stats` payload: the ingest hot path. Running the zod
 * schema (stats.ts) cost about 1.7 ms per window (a refinement per bin count), as much as writing
 * the window. This answers the common case — a well-formed window — in microseconds, and answers
 * only "accepted" or "ask zod": every refusal, and anything it is not sure of (unknown keys, which
 * zod strips; a non-plain object; an `undefined` optional), is left to the zod schema, so refusals
 * keep their exact reason, message and path. It must never accept what the schema refuses; what it
 * accepts is rebuilt in the schema's key order, so its result equals zod's output (tested against
 * the schema on valid, mutated and bad inputs in stats-fast-path.test.ts).
 *
 * @example
 * const m = fastStatsMessage(raw) ?? StatsMessage.parse(raw);
 */
import { z } from 'zod';
import type { CategoricalSketch } from '../sketch/categorical-sketch.ts';
import type { FeatureSetSketch } from '../sketch/feature-set-sketch.ts';
import type { NumericSketch } from '../sketch/numeric-sketch.ts';
import { DEVICE_ID_PATTERN } from '../topics.ts';

/** The timestamp form of `stats` and `telemetry` (shared with the zod schemas). */
export const IsoTime = z.iso.datetime({ offset: true });

type Obj = Record<string, unknown>;

/** A plain object (JSON.parse's kind) whose own keys are all in `allowed`. */
export function plainWithKeys(v: unknown, allowed: ReadonlySet<string>): v is Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return false;
  for (const k in v) if (!allowed.has(k)) return false;
  return Object.getOwnPropertySymbols(v).length === 0;
}

export const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
export const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
export const str = (v: unknown, min: number, max: number): v is string => typeof v === 'string' && v.length >= min && v.length <= max;
export const isoTime = (v: unknown): v is string => typeof v === 'string' && IsoTime.safeParse(v).success;

function finiteArray(v: unknown, min: number, max: number): v is number[] {
  if (!Array.isArray(v) || v.length < min || v.length > max) return false;
  for (let i = 0; i < v.length; i++) if (!finite(v[i])) return false;
  return true;
}

/** Count array; returns its sum (added in order, as the schema does), or -1 when not counts. */
export function countSum(v: unknown, max: number): number {
  if (!Array.isArray(v) || v.length > max) return -1;
  let s = 0;
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (!count(x)) return -1;
    s += x;
  }
  return s;
}

const NUMERIC_KEYS = new Set(['kind', 'edges', 'bins', 'sums', 'count', 'nulls', 'nans', 'outOfRange', 'min', 'max', 'mean', 'm2']);

function numeric(v: unknown): NumericSketch | null {
  if (!plainWithKeys(v, NUMERIC_KEYS) || v.kind !== 'numeric') return null;
  const { edges, bins, sums, count: n, nulls, nans, outOfRange, min, max, mean, m2 } = v;
  if (!finiteArray(edges, 1, 1000) || !finiteArray(sums, 0, 1001)) return null;
  if (!count(n) || !count(nulls) || !count(nans) || !count(outOfRange) || !finite(mean) || !finite(m2)) return null;
  if (!(min === null || finite(min)) || !(max === null || finite(max))) return null;
  const binTotal = countSum(bins, 1001);
  if (binTotal < 0) return null;
  const b = bins as number[];
  for (let i = 1; i < edges.length; i++) if (!(edges[i] > edges[i - 1])) return null;
  if (b.length !== edges.length + 1 || sums.length !== b.length || binTotal !== n) return null;
  const E = edges.length;
  for (let i = 0; i <= E; i++) {
    if (b[i] === 0) {
      if (sums[i] !== 0) return null;
      continue;
    }
    const m = sums[i] / b[i];
    const lo = i === 0 ? -Infinity : edges[i - 1];
    const hi = i === E ? Infinity : edges[i];
    const tol = 1e-9 * Math.max(Math.abs(m), 1);
    if (m < lo - tol || m > hi + tol) return null;
  }
  if (outOfRange > n) return null;
  if (n === 0) {
    if (min !== null || max !== null || mean !== 0 || m2 !== 0) return null;
  } else {
    if (min === null || max === null || min > max) return null;
    const slack = 1e-9 * Math.max(Math.abs(min), Math.abs(max), 1);
    if (mean < min - slack || mean > max + slack || m2 < -slack) return null;
  }
  return { kind: 'numeric', edges, bins: b, sums, count: n, nulls, nans, outOfRange, min, max, mean, m2 };
}

const CATEGORICAL_KEYS = new Set(['kind', 'categories', 'counts', 'other', 'nulls', 'count']);

function categorical(v: unknown): CategoricalSketch | null {
  if (!plainWithKeys(v, CATEGORICAL_KEYS) || v.kind !== 'categorical') return null;
  const { categories, counts, other, nulls, count: n } = v;
  if (!Array.isArray(categories) || categories.length > 10_000) return null;
  for (const c of categories) if (typeof c !== 'string') return null;
  const total = countSum(counts, Infinity);
  if (total < 0 || !count(other) || !count(nulls) || !count(n)) return null;
  if (new Set(categories).size !== categories.length || (counts as number[]).length !== categories.length || total + other !== n) return null;
  return { kind: 'categorical', categories, counts: counts as number[], other, nulls, count: n };
}

const SET_KEYS = new Set(['features', 'outputs', 'quality']);
const OUTPUT_KEYS = new Set(['predictedClass', 'confidence', 'value']);
const QUALITY_KEYS = new Set(['rows', 'schemaViolations', 'outOfRange', 'nans']);
const VIOLATION_KEYS = new Set(['missing', 'extra', 'wrongType']);
const seen = (f: NumericSketch | CategoricalSketch) => (f.kind === 'numeric' ? f.count + f.nulls + f.nans : f.count + f.nulls);

function featureSet(v: unknown): FeatureSetSketch | null {
  if (!plainWithKeys(v, SET_KEYS) || !plainWithKeys(v.quality, QUALITY_KEYS) || !plainWithKeys(v.outputs, OUTPUT_KEYS)) return null;
  const q = v.quality;
  const sv = q.schemaViolations;
  if (!count(q.rows) || !count(q.outOfRange) || !count(q.nans) || !plainWithKeys(sv, VIOLATION_KEYS) || !count(sv.missing) || !count(sv.extra) || !count(sv.wrongType)) return null;
  const rows = q.rows;
  const rawFeatures = v.features;
  if (!plainWithKeys(rawFeatures, ANY_KEY)) return null;
  const features: FeatureSetSketch['features'] = {};
  for (const name of Object.keys(rawFeatures)) {
    if (name.length < 1 || name.length > 200 || name === '__proto__') return null;
    const raw = rawFeatures[name] as { kind?: unknown } | undefined;
    const f = raw?.kind === 'numeric' ? numeric(raw) : categorical(raw);
    if (!f || seen(f) !== rows) return null;
    features[name] = f;
  }
  const o = v.outputs;
  const outputs: FeatureSetSketch['outputs'] = {};
  if ('predictedClass' in o) {
    const p = categorical(o.predictedClass);
    if (!p || seen(p) > rows) return null;
    outputs.predictedClass = p;
  }
  for (const k of ['confidence', 'value'] as const) {
    if (!(k in o)) continue;
    const n = numeric(o[k]);
    if (!n || seen(n) > rows) return null;
    outputs[k] = n;
  }
  return {
    features,
    outputs,
    quality: { rows, schemaViolations: { missing: sv.missing, extra: sv.extra, wrongType: sv.wrongType }, outOfRange: q.outOfRange, nans: q.nans },
  };
}

/** Any own string key (checked by the caller). */
const ANY_KEY: ReadonlySet<string> = { has: () => true } as unknown as ReadonlySet<string>;

const MESSAGE_KEYS = new Set(['v', 'deviceId', 'bundleId', 'model', 'windowStart', 'windowEnd', 'seq', 'sketch']);
const MODEL_KEYS = new Set(['name', 'version']);

/** Output of the `StatsMessage` schema. */
export interface FastStatsMessage {
  v: 1;
  deviceId: string;
  bundleId: string;
  model: { name: string; version: number };
  windowStart: string;
  windowEnd: string;
  seq: number;
  sketch: FeatureSetSketch;
}

/**
 * The message as the `StatsMessage` schema would output it, when the payload is certainly valid;
 * `null` means "not certain": run the schema (which then refuses it, or accepts it).
 */
export function fastStatsMessage(raw: unknown): FastStatsMessage | null {
  if (!plainWithKeys(raw, MESSAGE_KEYS) || raw.v !== 1) return null;
  const { deviceId, bundleId, model, windowStart, windowEnd, seq } = raw;
  if (typeof deviceId !== 'string' || !DEVICE_ID_PATTERN.test(deviceId) || !str(bundleId, 1, 200)) return null;
  if (!plainWithKeys(model, MODEL_KEYS) || !str(model.name, 1, 200) || typeof model.version !== 'number' || !Number.isSafeInteger(model.version) || model.version <= 0) return null;
  if (!isoTime(windowStart) || !isoTime(windowEnd) || !count(seq)) return null;
  const sketch = featureSet(raw.sketch);
  if (!sketch || !(Date.parse(windowEnd) > Date.parse(windowStart))) return null;
  return { v: 1, deviceId, bundleId, model: { name: model.name, version: model.version }, windowStart, windowEnd, seq, sketch };
}
