// Reference profiles: a version's reference dataset (JSON rows, CSV, a stored dataset; image datasets
// through image-reference.ts) turned into a layout (bin edges, categories, outputs) and the dataset's
// own sketch with protocol/'s computeReferenceProfile, the same code the agents sketch with.
// The numeric edges are what bundles ship as `reference.bins`.
import { eq } from 'drizzle-orm';
import { SketchError } from '../../protocol/sketch/errors.ts';
import type { FeatureSetSketch, SketchLayout } from '../../protocol/sketch/feature-set-sketch.ts';
import { numericStd } from '../../protocol/sketch/numeric-sketch.ts';
import { referenceWarnings } from '../../protocol/drift/reference-warnings.ts';
import { computeReferenceProfile, type ReferenceRow, type ReferenceSpec } from '../../protocol/sketch/reference-profile.ts';
import { recordAudit } from '../audit/audit-log.ts';
import type { LoadedDataset } from '../datasets/dataset-service.ts';
import type { Db, Tx } from '../db/client.ts';
import { referenceProfiles } from '../db/schema.ts';
import { Invalid, NotFound } from '../errors.ts';
import { formatRef } from '../models/model-ref.ts';
import { resolveVersion } from '../models/model-service.ts';
import type { TensorInfo } from '../onnx/inspect.ts';
import { CsvError, parseCsv } from './csv.ts';
import { driftConfigOf } from './drift-config-service.ts';

export type CellValue = number | string | boolean | null;

/** One reference row: feature values plus, optionally, what the model predicted for it. */
export interface ReferenceInputRow {
  values: Record<string, CellValue>;
  outputs?: { predictedClass?: number | string | null; confidence?: number | null; value?: number | null };
}

export interface ReferenceOptions {
  /** Requested numeric bins (quantiles), default 20. */
  bins?: number;
  /** Columns to treat as categorical even when every value is a number (integer-coded categories). */
  categorical?: string[];
  /** Classes of a classifier; default: the model's output width, else the largest predicted class + 1. */
  numClasses?: number;
}

export const MAX_REFERENCE_ROWS = 1_000_000;
const MAX_FEATURES = 1000;
/** CSV columns with this prefix are the model's outputs (`outputs.predictedClass`, `outputs.confidence`, `outputs.value`). */
const OUTPUT_PREFIX = 'outputs.';
const PRED = 'outputs.predictedClass';
const CONF = 'outputs.confidence';
const VALUE = 'outputs.value';

/**
 * CSV text → reference rows. A column whose every non-empty cell is a finite number is numeric,
 * otherwise categorical; an empty cell is a null.
 */
export function rowsFromCsv(text: string): ReferenceInputRow[] {
  let parsed;
  try {
    parsed = parseCsv(text);
  } catch (err) {
    if (err instanceof CsvError) throw Invalid(err.message);
    throw err;
  }
  const { header, rows } = parsed;
  const numeric = header.map((_, j) => rows.every((r) => r[j].trim() === '' || Number.isFinite(Number(r[j]))));
  const unknownOutputs = header.filter((h) => h.startsWith(OUTPUT_PREFIX) && ![PRED, CONF, VALUE].includes(h));
  if (unknownOutputs.length) throw Invalid(`unknown output column(s) ${unknownOutputs.join(', ')}: use ${PRED}, ${CONF} or ${VALUE}`);
  return rows.map((r) => {
    const values: Record<string, CellValue> = {};
    const outputs: NonNullable<ReferenceInputRow['outputs']> = {};
    header.forEach((h, j) => {
      const cell = r[j].trim();
      const v: CellValue = cell === '' ? null : numeric[j] ? Number(cell) : cell;
      if (h === PRED) outputs.predictedClass = v as number | string | null;
      else if (h === CONF) outputs.confidence = typeof v === 'number' ? v : null;
      else if (h === VALUE) outputs.value = typeof v === 'number' ? v : null;
      else values[h] = v;
    });
    return Object.keys(outputs).length ? { values, outputs } : { values };
  });
}

/** Reference rows from a stored tabular dataset version: its feature columns (labels, groups and ids are not model inputs). */
export function rowsFromDataset(data: LoadedDataset): ReferenceInputRow[] {
  if (data.version.kind !== 'tabular') throw Invalid(`${data.version.ref} is an image dataset: use rowsFromImageDataset (image-reference.ts)`);
  const features = data.columns.filter((c) => c.role === 'feature').map((c) => c.name);
  return data.rows.map((r) => ({ values: Object.fromEntries(features.map((f) => [f, r[f] ?? null])) }));
}

function classIndex(v: number | string | null | undefined, row: number): number | null {
  if (v === null || v === undefined || v === '') return null;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw Invalid(`row ${row + 1}: predictedClass must be a class index (0, 1, …), got ${JSON.stringify(v)}`);
  return n;
}

/** The model's class count from its first output's last dimension, when it is a fixed number > 1. */
function outputWidth(outputs: TensorInfo[]): number | null {
  const last = outputs[0]?.shape.at(-1);
  return typeof last === 'number' && last > 1 ? last : null;
}

/** Works out the spec (feature kinds, outputs) from the rows and turns them into protocol reference rows. */
export function referenceSpecOf(input: ReferenceInputRow[], opts: ReferenceOptions, modelOutputs: TensorInfo[]): { spec: ReferenceSpec; rows: ReferenceRow[] } {
  if (input.length === 0) throw Invalid('the reference dataset has no rows');
  if (input.length > MAX_REFERENCE_ROWS) throw Invalid(`the reference dataset has ${input.length} rows; at most ${MAX_REFERENCE_ROWS} are accepted (sample it)`);
  const names: string[] = [];
  const seen = new Set<string>();
  const categoricalByValue = new Set<string>();
  for (const r of input) {
    for (const [k, v] of Object.entries(r.values)) {
      if (!seen.has(k)) {
        if (k.startsWith(OUTPUT_PREFIX) || k === 'outputs') throw Invalid(`"${k}" is reserved for model outputs; rename the feature`);
        seen.add(k);
        names.push(k);
      }
      if (typeof v === 'string' || typeof v === 'boolean') categoricalByValue.add(k);
    }
  }
  if (names.length === 0) throw Invalid('the reference rows have no features');
  if (names.length > MAX_FEATURES) throw Invalid(`${names.length} features; at most ${MAX_FEATURES} are supported`);
  const forced = new Set(opts.categorical ?? []);
  for (const c of forced) if (!seen.has(c)) throw Invalid(`categorical column "${c}" is not in the data`);

  const hasClass = input.some((r) => r.outputs && (r.outputs.predictedClass != null || r.outputs.confidence != null));
  const hasValue = input.some((r) => r.outputs && r.outputs.value != null);
  if (hasClass && hasValue) throw Invalid('rows mix classification outputs (predictedClass, confidence) with a regression value');

  const rows: ReferenceRow[] = [];
  let maxClass = -1;
  input.forEach((r, i) => {
    const row: ReferenceRow = {};
    for (const n of names) {
      const v = Object.hasOwn(r.values, n) ? r.values[n] : null;
      row[n] = typeof v === 'boolean' ? String(v) : v;
    }
    if (hasClass) {
      const k = classIndex(r.outputs?.predictedClass, i);
      if (k !== null) maxClass = Math.max(maxClass, k);
      row[PRED] = k;
      row[CONF] = r.outputs?.confidence ?? null;
    } else if (hasValue) row[VALUE] = r.outputs?.value ?? null;
    rows.push(row);
  });

  const features = names.map((name) => ({ name, kind: forced.has(name) || categoricalByValue.has(name) ? ('categorical' as const) : ('numeric' as const) }));
  let outputs: ReferenceSpec['outputs'];
  if (hasClass) {
    const width = outputWidth(modelOutputs);
    const numClasses = opts.numClasses ?? (width !== null && width > maxClass ? width : maxClass + 1);
    if (numClasses < 1) throw Invalid('no predicted class in the reference rows: give outputs.predictedClass or leave outputs out');
    if (maxClass >= numClasses) throw Invalid(`predictedClass ${maxClass} is out of range for ${numClasses} classes`);
    outputs = { task: 'classification', numClasses, predictedClassColumn: PRED, confidenceColumn: CONF };
  } else if (hasValue) outputs = { task: 'regression', valueColumn: VALUE };
  return { spec: { features, outputs }, rows };
}

export interface ReferenceView {
  model: string;
  rows: number;
  bins: number;
  source: string;
  createdAt: string;
  createdBy: string | null;
  layout: SketchLayout;
  features: Array<{
    name: string;
    kind: 'numeric' | 'categorical';
    count: number;
    nulls: number;
    bins?: number;
    min?: number | null;
    max?: number | null;
    mean?: number;
    std?: number;
    categories?: number;
  }>;
  sketch?: FeatureSetSketch;
  /** At upload: what makes this reference too small for a stable evaluation (`referenceWarnings`). */
  warnings?: string[];
}

type ProfileRow = typeof referenceProfiles.$inferSelect;

function toView(ref: string, row: ProfileRow, withSketch: boolean): ReferenceView {
  const features = Object.entries(row.sketch.features).map(([name, f]) =>
    f.kind === 'numeric'
      ? { name, kind: f.kind, count: f.count, nulls: f.nulls + f.nans, bins: f.bins.length, min: f.min, max: f.max, mean: f.mean, std: numericStd(f) }
      : { name, kind: f.kind, count: f.count, nulls: f.nulls, categories: f.categories.length },
  );
  return {
    model: ref,
    rows: row.rows,
    bins: row.bins,
    source: row.source,
    createdAt: row.createdAt,
    createdBy: row.createdBy,
    layout: row.layout,
    features,
    ...(withSketch ? { sketch: row.sketch } : {}),
  };
}

/** The numeric edges of a layout, as a bundle definition's `reference.bins` carries them. */
export function binsOfLayout(layout: SketchLayout): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [name, f] of Object.entries(layout.features)) if (f.kind === 'numeric') out[name] = f.edges;
  return out;
}

/** Computes and stores (creates or replaces) the reference profile of a version; re-sign its devices afterwards. */
export async function setReferenceProfile(
  db: Db,
  ref: string,
  input: { rows: ReferenceInputRow[]; /** 'json', 'csv', or 'dataset name@N' */ source: string; options: ReferenceOptions; actor: string },
): Promise<ReferenceView & { modelVersionId: number }> {
  const bins = input.options.bins ?? 20;
  return db.transaction(async (tx) => {
    const version = await resolveVersion(tx, ref);
    const label = formatRef(version.modelName, version.version);
    const { spec, rows } = referenceSpecOf(input.rows, input.options, version.outputs as TensorInfo[]);
    let profile;
    try {
      profile = computeReferenceProfile(rows, spec, { bins });
    } catch (err) {
      if (err instanceof SketchError) throw Invalid(err.message);
      throw err;
    }
    // Replacing is fine even when bundles ship other edges: devices get the new layout in their signed
    // manifests (agentConfig.statsLayout) once the caller re-signs them (DesiredState.resignVersion).
    const row = { layout: profile.layout, sketch: profile.sketch, rows: profile.sketch.quality.rows, bins, source: input.source, createdAt: new Date().toISOString(), createdBy: input.actor };
    await tx.insert(referenceProfiles).values({ modelVersionId: version.id, ...row }).onConflictDoUpdate({ target: referenceProfiles.modelVersionId, set: row });
    await recordAudit(tx, input.actor, 'model.reference.set', label, {
      rows: row.rows,
      features: Object.keys(profile.layout.features).length,
      outputs: profile.layout.outputs.task,
      source: input.source,
    });
    const warnings = referenceWarnings(profile.sketch, await driftConfigOf(tx, version.modelId));
    return { ...toView(label, { modelVersionId: version.id, ...row }, false), warnings, modelVersionId: version.id };
  });
}

export async function getReferenceProfile(db: Db, ref: string, opts: { sketch?: boolean } = {}): Promise<ReferenceView> {
  const version = await resolveVersion(db, ref);
  const label = formatRef(version.modelName, version.version);
  const row = await db.query.referenceProfiles.findFirst({ where: eq(referenceProfiles.modelVersionId, version.id) });
  if (!row) throw NotFound(`reference profile of ${label}`, { hint: referenceHint(label) });
  return toView(label, row, opts.sketch ?? false);
}

/** How to add a reference profile, for error messages. */
export function referenceHint(label: string): string {
  const [name, version] = label.split('@');
  return (
    `add one from a file with \`flotilla models reference ${label} <reference.csv|.jsonl>\` or from a pushed dataset with \`flotilla models reference ${label} --dataset <name@N>\` ` +
    `(POST /api/v1/models/${name}/versions/${version}/reference with the rows, or with {"dataset": "<name@N>"})`
  );
}

/** The stored profile of a version, or null. */
export async function referenceOf(tx: Tx, versionId: number): Promise<ProfileRow | null> {
  return (await tx.query.referenceProfiles.findFirst({ where: eq(referenceProfiles.modelVersionId, versionId) })) ?? null;
}

/**
 * What a bundle built from this version should carry as `definition.reference`: the layout's numeric
 * edges (`bins`) and the full layout, or null when the version has no reference profile.
 */
export async function referenceForBundle(tx: Tx, versionId: number): Promise<{ bins: Record<string, number[]>; layout: SketchLayout } | null> {
  const row = await tx.query.referenceProfiles.findFirst({ columns: { layout: true }, where: eq(referenceProfiles.modelVersionId, versionId) });
  return row ? { bins: binsOfLayout(row.layout), layout: row.layout } : null;
}
