/**
 * Tabular preprocessing: feature objects or arrays (one row or a batch) → a float32 [rows, features]
 * tensor in the bundle's feature order, plus data-quality counts per row for the input statistics.
 *
 * Accepted rows: `{ f0: 1.2, f1: 3, … }` (by name; extra names are ignored and counted) or
 * `[1.2, 3, …]` (feature order, exactly one value per feature). A batch is an array of rows.
 *
 * Values, per feature dtype:
 * - `float32`: a number. NaN / ±Infinity pass through (JSON cannot carry them; JS callers can) and
 *   are counted in `nan`.
 * - `int64`: an integer number.
 * - `categorical`: one of the feature's category strings (encoded as its index), or the index itself.
 *
 * Policy (documented defaults): a missing value (absent, `null`, `undefined`) or a value of the wrong
 * type is an INVALID_INPUT error naming the row and the feature. With `missing: 'nan'` /
 * `wrongType: 'nan'`, a float32 feature gets NaN instead (counted) and the request goes on — for
 * models trained to handle NaN (e.g. gradient-boosted trees). int64 and categorical features have
 * no NaN, so they always refuse. An unknown category is always an error.
 *
 * @example
 * const r = preprocessTabular(spec, [{ f0: 1, f1: 2 }, [3, 4]]);
 * r.dims // [2, 2]; r.data // Float32Array [1, 2, 3, 4]; r.quality[0] // { missing: 0, extra: 0, wrongType: 0, nan: 0 }
 */
import type { TabularPreprocess } from '../../firmware-bundles/definition.ts';
import { invalidInput } from './errors.ts';

/** Data-quality counts of one row. */
export interface RowQuality {
  /** Features absent, null or undefined (only non-zero under `missing: 'nan'`). */
  missing: number;
  /** Object keys that are not features of the spec (ignored). */
  extra: number;
  /** Values of the wrong type (only non-zero under `wrongType: 'nan'`). */
  wrongType: number;
  /** NaN or ±Infinity values given (plus the ones the policy substituted). */
  nan: number;
}

export interface TabularPolicy {
  missing?: 'error' | 'nan';
  wrongType?: 'error' | 'nan';
  /** Largest batch accepted (default 4096 rows). */
  maxRows?: number;
}

export type TabularRow = Readonly<Record<string, unknown>> | ReadonlyArray<unknown>;
export type TabularInput = TabularRow | ReadonlyArray<TabularRow>;

export interface TabularResult {
  /** Model input name (the spec's `input`). */
  input: string;
  dims: [number, number];
  data: Float32Array;
  quality: RowQuality[];
  /** True when the request was a batch (the answer is then a list as well). */
  batch: boolean;
}

export function preprocessTabular(spec: TabularPreprocess, input: unknown, policy: TabularPolicy = {}): TabularResult {
  const { rows, batch } = splitRows(input);
  const maxRows = policy.maxRows ?? 4096;
  if (rows.length === 0) throw invalidInput('features: the batch is empty');
  if (rows.length > maxRows) throw invalidInput(`features: ${rows.length} rows, at most ${maxRows} per request`);
  const features = spec.features;
  const n = features.length;
  const data = new Float32Array(rows.length * n);
  const quality: RowQuality[] = [];
  const { categoryIndex, known } = lookupsOf(spec);

  rows.forEach((row, r) => {
    const q: RowQuality = { missing: 0, extra: 0, wrongType: 0, nan: 0 };
    const at = batch ? `row ${r}: ` : '';
    let values: ArrayLike<unknown>;
    if (Array.isArray(row)) {
      if (row.length !== n) {
        throw invalidInput(`${at}${row.length} values given, expected ${n} in feature order (${names(features)})`, { row: r });
      }
      values = row;
    } else if (row !== null && typeof row === 'object') {
      const obj = row as Record<string, unknown>;
      for (const key of Object.keys(obj)) if (!known.has(key)) q.extra++;
      values = features.map((f) => (Object.hasOwn(obj, f.name) ? obj[f.name] : undefined));
    } else {
      throw invalidInput(`${at}a row must be an object of features or an array of ${n} values, got ${typeName(row)}`, { row: r });
    }

    for (let j = 0; j < n; j++) {
      const f = features[j];
      const v = values[j];
      const where = `${at}feature "${f.name}"`;
      let out: number;
      if (v === undefined || v === null) {
        if (policy.missing !== 'nan' || f.dtype !== 'float32') {
          throw invalidInput(`${where} is missing`, { row: r, feature: f.name });
        }
        q.missing++;
        q.nan++;
        out = NaN;
      } else if (f.dtype === 'categorical') {
        out = categorical(v, categoryIndex[j], where, r, f.name);
      } else if (typeof v === 'number' && (f.dtype === 'float32' || Number.isInteger(v))) {
        out = v;
        if (!Number.isFinite(v)) q.nan++;
      } else {
        const expected = f.dtype === 'int64' ? 'an integer' : 'a number';
        if (policy.wrongType !== 'nan' || f.dtype !== 'float32') {
          throw invalidInput(`${where} must be ${expected}, got ${typeName(v)}`, { row: r, feature: f.name });
        }
        q.wrongType++;
        q.nan++;
        out = NaN;
      }
      data[r * n + j] = out;
    }
    quality.push(q);
  });
  return { input: spec.input, dims: [rows.length, n], data, quality, batch };
}

interface Lookups {
  categoryIndex: Array<Map<string, number> | undefined>;
  known: Set<string>;
}
// Built once per spec (a bundle's spec lives as long as the bundle), not on every request.
const LOOKUPS = new WeakMap<TabularPreprocess, Lookups>();

function lookupsOf(spec: TabularPreprocess): Lookups {
  let l = LOOKUPS.get(spec);
  if (!l) {
    l = { categoryIndex: spec.features.map((f) => (f.categories ? new Map(f.categories.map((c, i) => [c, i])) : undefined)), known: new Set(spec.features.map((f) => f.name)) };
    LOOKUPS.set(spec, l);
  }
  return l;
}

/** A single row (object, or array of scalars) or a batch (array of rows). */
function splitRows(input: unknown): { rows: unknown[]; batch: boolean } {
  if (Array.isArray(input)) {
    // Any nested row makes it a batch (a row holds scalars only); its bad rows are then named.
    const isBatch = input.some((e) => e !== null && typeof e === 'object');
    return isBatch ? { rows: input, batch: true } : input.length === 0 ? { rows: [], batch: true } : { rows: [input], batch: false };
  }
  if (input !== null && typeof input === 'object') return { rows: [input], batch: false };
  throw invalidInput(`features must be an object, an array of values, or a batch of them; got ${typeName(input)}`);
}

function categorical(v: unknown, index: Map<string, number> | undefined, where: string, row: number, feature: string): number {
  if (typeof v === 'string') {
    const i = index?.get(v);
    if (i === undefined) {
      const known = index ? [...index.keys()].map((c) => JSON.stringify(c)).join(', ') : 'none declared';
      throw invalidInput(`${where}: unknown category ${JSON.stringify(v)} (known: ${known})`, { row, feature });
    }
    return i;
  }
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && (!index || v < index.size)) return v;
  throw invalidInput(`${where} must be a category name or its index, got ${typeName(v)}`, { row, feature });
}

function names(features: TabularPreprocess['features']): string {
  return features.length <= 6 ? features.map((f) => f.name).join(', ') : `${features[0].name} … ${features[features.length - 1].name}`;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v)}`;
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'number') return `${v}`;
  return typeof v;
}
