/**
 * Datasets: named, versioned (1, 2, 3 … per name), content-addressed. A version stores one artifact:
 * the CSV / JSON lines file as uploaded, or for images a JSON manifest naming each image (its own
 * artifact) by sha256 with its label and group values. Pushing content a name already has answers
 * that version instead of making a new one.
 *
 * Other server code (training-job snapshots) creates versions from bytes with {@link createDatasetVersion};
 * evaluation and reference profiles read them back with {@link loadDataset}.
 *
 * @example
 * const { version } = await createDatasetVersion(db, store, { name: 'sensors', bytes, format: 'csv', groups: ['region'], source: { kind: 'upload' }, actor });
 * const data = await loadDataset(db, store, 'sensors@1'); // data.rows, data.columns
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { and, desc, eq, sql } from 'drizzle-orm';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import { recordAudit } from '../audit/audit-log.ts';
import type { Db, Tx } from '../db/client.ts';
import { artifacts, datasets, datasetVersions } from '../db/schema.ts';
import { Invalid, NotFound } from '../errors.ts';
import { parseTensorDataset, type TensorFormat, type TensorTable } from './tensor-dataset.ts';
import { parseImageArchive, parseTabular, type CellValue, type DatasetColumn, type DatasetFormat, type ImageItem, type ImageManifest, type RoleOptions } from './formats.ts';

export const DATASET_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** Datasets are parsed in memory (rows, images), so they get their own cap below the model upload limit. */
export const MAX_DATASET_BYTES = 256 * 1024 * 1024;

export interface DatasetVersionView {
  ref: string;
  name: string;
  version: number;
  kind: 'tabular' | 'images' | 'tensors';
  format: string;
  sha256: string;
  size: number;
  rows: number;
  columns: DatasetColumn[];
  source: Record<string, unknown>;
  createdAt: string;
  createdBy: string | null;
}

export interface CreateDatasetVersionInput extends RoleOptions {
  name: string;
  bytes: Uint8Array;
  /** `csv` or `jsonl` (tabular), `tar` (images + labels.csv), `npy` / `npz` / `tensors` (named tensors, tensor-dataset.ts). */
  format: DatasetFormat;
  description?: string;
  /** How it was made: `{ kind: 'upload', file? }`, or a job's `{ kind: 'snapshot', jobId, … }`. */
  source: Record<string, unknown>;
  actor: string;
}

/** Stores a dataset version (or finds the identical one); `created` is false for a duplicate. */
export async function createDatasetVersion(db: Db, store: ArtifactStore, input: CreateDatasetVersionInput): Promise<{ created: boolean; version: DatasetVersionView }> {
  if (!DATASET_NAME.test(input.name)) throw Invalid(`invalid dataset name "${input.name}": use lowercase letters, digits, '.', '_' or '-'`);
  if (input.bytes.length > MAX_DATASET_BYTES) throw Invalid(`the dataset is ${input.bytes.length} bytes; at most ${MAX_DATASET_BYTES} are accepted`);
  const roles: RoleOptions = { label: input.label, groups: input.groups, id: input.id };
  let content: Uint8Array;
  let kind: 'tabular' | 'images' | 'tensors';
  let rows: number;
  let columns: DatasetColumn[];
  let blobs = new Map<string, Uint8Array>();
  if (input.format === 'tar') {
    const archive = await parseImageArchive(input.bytes, roles);
    content = new TextEncoder().encode(JSON.stringify(archive.manifest));
    blobs = archive.blobs;
    kind = 'images';
    rows = archive.manifest.items.length;
    columns = archive.manifest.columns;
    if (rows === 0) throw Invalid('labels.csv lists no images');
  } else if (input.format === 'csv' || input.format === 'jsonl') {
    const table = parseTabular(input.bytes, input.format, roles);
    content = input.bytes;
    kind = 'tabular';
    rows = table.rows.length;
    columns = table.columns;
  } else if (input.format === 'npy' || input.format === 'npz' || input.format === 'tensors') {
    const table = parseTensorDataset(input.bytes, input.format, input.label);
    content = input.bytes;
    kind = 'tensors';
    rows = table.n;
    columns = tensorColumns(table);
  } else {
    throw Invalid(`unknown dataset format "${String(input.format)}": use csv, jsonl, tar, npy, npz or tensors`);
  }
  const sha256 = createHash('sha256').update(content).digest('hex');
  const existing = await findByContent(db, input.name, sha256);
  if (existing) return { created: false, version: existing };

  const stored: string[] = [];
  for (const bytes of blobs.values()) stored.push((await store.putBytes(bytes)).sha256);
  stored.push((await store.putBytes(content)).sha256);
  try {
    return await db.transaction(async (tx) => {
      // Re-checked inside the transaction: a concurrent identical push must not make two versions.
      const again = await findByContent(tx, input.name, sha256);
      if (again) return { created: false, version: again };
      await tx.insert(datasets).values({ name: input.name, description: input.description ?? null }).onConflictDoNothing();
      const dataset = (await tx.query.datasets.findFirst({ where: eq(datasets.name, input.name) }))!;
      const [{ next }] = await tx
        .select({ next: sql<number>`coalesce(max(${datasetVersions.version}), 0) + 1` })
        .from(datasetVersions)
        .where(eq(datasetVersions.datasetId, dataset.id));
      for (const [sha, bytes] of blobs) await tx.insert(artifacts).values({ sha256: sha, size: bytes.length, mediaType: 'application/octet-stream' }).onConflictDoNothing();
      const mediaType = datasetMediaType(kind, input.format);
      await tx.insert(artifacts).values({ sha256, size: content.length, mediaType }).onConflictDoNothing();
      const [row] = await tx
        .insert(datasetVersions)
        .values({
          datasetId: dataset.id,
          version: next,
          kind,
          format: kind === 'images' ? 'images' : input.format,
          artifactSha256: sha256,
          size: content.length,
          rows,
          columns: columns as unknown as Array<Record<string, unknown>>,
          source: input.source,
          createdBy: input.actor,
        })
        .returning();
      await recordAudit(tx, input.actor, 'dataset.version.create', `${input.name}@${next}`, { sha256, rows, kind, source: input.source });
      return { created: true, version: toView(input.name, row) };
    });
  } catch (err) {
    // Nothing half-written: blobs no artifact row claims go again.
    for (const sha of stored) {
      const row = await db.query.artifacts.findFirst({ where: eq(artifacts.sha256, sha) });
      if (!row) await store.remove(sha);
    }
    throw err;
  }
}

/** What a version's stored file is, for the artifact row and downloads. */
export function datasetMediaType(kind: string, format: string): string {
  if (kind === 'images') return 'application/json';
  if (format === 'csv') return 'text/csv';
  if (format === 'npy' || format === 'npz') return 'application/octet-stream';
  return 'application/x-ndjson';
}

function tensorColumns(t: TensorTable): DatasetColumn[] {
  return [
    ...t.tensors.map((c): DatasetColumn => ({ name: c.name, type: 'tensor', role: 'feature', dtype: c.dtype, dims: c.sampleDims })),
    ...(t.labels ? [{ name: 'label', type: (t.labels.every((l) => typeof l === 'number') ? 'numeric' : 'categorical') as DatasetColumn['type'], role: 'label' as const }] : []),
    ...t.outputs.map((c): DatasetColumn => ({ name: c.name, type: 'tensor', role: 'output', dtype: c.dtype, dims: c.sampleDims })),
  ];
}

async function findByContent(tx: Tx, name: string, sha256: string): Promise<DatasetVersionView | null> {
  const [hit] = await tx
    .select({ v: datasetVersions })
    .from(datasetVersions)
    .innerJoin(datasets, eq(datasets.id, datasetVersions.datasetId))
    .where(and(eq(datasets.name, name), eq(datasetVersions.artifactSha256, sha256)))
    .orderBy(datasetVersions.version)
    .limit(1);
  return hit ? toView(name, hit.v) : null;
}

type VersionRow = typeof datasetVersions.$inferSelect;

function toView(name: string, row: VersionRow): DatasetVersionView {
  return {
    ref: `${name}@${row.version}`,
    name,
    version: row.version,
    kind: row.kind,
    format: row.format,
    sha256: row.artifactSha256,
    size: row.size,
    rows: row.rows,
    columns: row.columns as unknown as DatasetColumn[],
    source: row.source,
    createdAt: row.createdAt,
    createdBy: row.createdBy,
  };
}

/** `name@N` or `name` (the newest version). */
export function parseDatasetRef(ref: string): { name: string; version?: number } {
  const at = ref.indexOf('@');
  const name = at === -1 ? ref : ref.slice(0, at);
  const sel = at === -1 ? '' : ref.slice(at + 1);
  if (!DATASET_NAME.test(name)) throw Invalid(`invalid dataset reference "${ref}": expected name@N or name`);
  if (sel === '' || sel === 'latest') return { name };
  if (!/^[1-9][0-9]{0,8}$/.test(sel)) throw Invalid(`invalid dataset reference "${ref}": expected name@N or name`);
  return { name, version: Number(sel) };
}

export async function getDatasetVersion(db: Tx, ref: string): Promise<DatasetVersionView & { id: number }> {
  const { name, version } = parseDatasetRef(ref);
  const dataset = await db.query.datasets.findFirst({ where: eq(datasets.name, name) });
  if (!dataset) throw NotFound(`dataset "${name}"`, { hint: `push one with \`flotilla datasets push <file> --name ${name}\`` });
  const row = await db.query.datasetVersions.findFirst({
    where: version === undefined ? eq(datasetVersions.datasetId, dataset.id) : and(eq(datasetVersions.datasetId, dataset.id), eq(datasetVersions.version, version)),
    orderBy: desc(datasetVersions.version),
  });
  if (!row) throw NotFound(`dataset version "${ref}"`);
  return { ...toView(name, row), id: row.id };
}

export async function listDatasets(db: Db) {
  return db
    .select({
      name: datasets.name,
      description: datasets.description,
      createdAt: datasets.createdAt,
      versions: sql<number>`count(${datasetVersions.id})`,
      latest: sql<number | null>`max(${datasetVersions.version})`,
      updatedAt: sql<string | null>`max(${datasetVersions.createdAt})`,
    })
    .from(datasets)
    .leftJoin(datasetVersions, eq(datasetVersions.datasetId, datasets.id))
    .groupBy(datasets.id)
    .orderBy(datasets.name);
}

export async function listDatasetVersions(db: Db, name: string): Promise<DatasetVersionView[]> {
  const dataset = await db.query.datasets.findFirst({ where: eq(datasets.name, name) });
  if (!dataset) throw NotFound(`dataset "${name}"`);
  const rows = await db.query.datasetVersions.findMany({ where: eq(datasetVersions.datasetId, dataset.id), orderBy: desc(datasetVersions.version) });
  return rows.map((r) => toView(name, r));
}

export interface LoadedDataset {
  version: DatasetVersionView;
  columns: DatasetColumn[];
  /** Tabular: one record per row (numbers for numeric columns). Images: file, label and group values per image. */
  rows: Array<Record<string, CellValue>>;
  /** Images only: each image with the sha256 its bytes are stored under (read them with `store.pathOf`). */
  images?: ImageItem[];
  /** Tensor datasets only: the named tensors (rows is empty). */
  tensors?: TensorTable;
}

/** Reads a dataset version back (`name@N`, or `name` for the newest). */
export async function loadDataset(db: Tx, store: ArtifactStore, ref: string): Promise<LoadedDataset> {
  const version = await getDatasetVersion(db, ref);
  const bytes = await readFile(store.pathOf(version.sha256));
  if (version.kind === 'images') {
    const manifest = JSON.parse(new TextDecoder().decode(bytes)) as ImageManifest;
    const labelName = manifest.columns.find((c) => c.role === 'label')?.name;
    const rows = manifest.items.map((it) => ({ file: it.file, ...(labelName ? { [labelName]: it.label } : {}), ...it.groups }));
    return { version, columns: manifest.columns, rows, images: manifest.items };
  }
  if (version.kind === 'tensors') {
    const label = version.format === 'npz' ? undefined : 'label';
    return { version, columns: version.columns, rows: [], tensors: parseTensorDataset(bytes, version.format as TensorFormat, label) };
  }
  const roles: RoleOptions = {
    label: version.columns.find((c) => c.role === 'label')?.name,
    groups: version.columns.filter((c) => c.role === 'group').map((c) => c.name),
    id: version.columns.find((c) => c.role === 'id')?.name,
  };
  const table = parseTabular(bytes, version.format as 'csv' | 'jsonl', roles);
  return { version, columns: version.columns, rows: table.rows };
}
