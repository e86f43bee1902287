// A job's training data: the policy's dataset (its newest version), plus — when the policy asks —
// the samples devices captured for the model (with their fed-back labels). When samples are added
// the combination is stored as a new content-addressed version of the same dataset (identical
// content answers the existing version), so the job's lineage names exactly what it trained on.
// Image datasets get the labelled image samples as new files of the tar (see snapshotImages).
// `materialize` lays a version out as files a trainer can read: one CSV/JSONL file, or a folder of
// images with labels.csv.
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import type { Db } from '../db/client.ts';
import { createDatasetVersion, getDatasetVersion, loadDataset, type DatasetVersionView } from '../datasets/dataset-service.ts';
import { writeTar, type TarEntry } from '../datasets/tar.ts';
import { snapshotSamples, type SnapshotRow } from '../samples/sample-snapshot.ts';
import type { DataSpec } from './retrain-policy.ts';

export interface Snapshot {
  version: DatasetVersionView & { id: number };
  /** Samples added on top of the dataset's newest version. */
  samples: number;
}

export async function snapshotData(
  db: Db,
  store: ArtifactStore,
  input: { data: DataSpec; modelName: string; cohort?: string; jobId: string; actor: string; log: (line: string) => void },
): Promise<Snapshot> {
  const base = await getDatasetVersion(db, input.data.dataset);
  if (!input.data.includeSamples) return { version: base, samples: 0 };
  const samples = await snapshotSamples(db, { modelName: input.modelName, withLabels: input.data.includeLabels });
  if (!samples.length) {
    input.log(`no captured samples for ${input.modelName}: training on ${base.ref}`);
    return { version: base, samples: 0 };
  }
  if (base.kind === 'images') return snapshotImages(db, store, base, samples, input);
  const loaded = await loadDataset(db, store, base.ref);
  const label = loaded.columns.find((c) => c.role === 'label')?.name;
  const groups = loaded.columns.filter((c) => c.role === 'group').map((c) => c.name);
  const id = loaded.columns.find((c) => c.role === 'id')?.name;
  const known = new Set(loaded.columns.map((c) => c.name));
  const lines = loaded.rows.map((r) => JSON.stringify(r));
  for (const s of samples) {
    // Only the dataset's own columns: a device may send inputs the model does not use.
    const row: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(s.inputs)) if (known.has(k) && k !== label) row[k] = v;
    if (label) row[label] = s.label ?? null;
    lines.push(JSON.stringify(row));
  }
  const { created, version } = await createDatasetVersion(db, store, {
    name: base.name,
    bytes: new TextEncoder().encode(lines.join('\n') + '\n'),
    format: 'jsonl',
    label,
    groups,
    id,
    source: { kind: 'snapshot', jobId: input.jobId, base: base.ref, samples: samples.length, labelled: samples.filter((s) => s.label !== undefined).length },
    actor: input.actor,
  });
  input.log(`snapshot ${version.ref}: ${base.ref} + ${samples.length} captured sample(s)${created ? '' : ' (identical to an existing version)'}`);
  return { version: await getDatasetVersion(db, version.ref), samples: samples.length };
}

/**
 * Image datasets: the base version's images under their own names and labels.csv, plus each labelled
 * image sample as `samples/<device>-<sampleId>.<jpg|png>` with its fed-back label. Unlabelled samples
 * (nothing to train on) and tabular ones are left out and counted in the job log. The tar goes through
 * the same parse as an upload, so each image is stored once by sha256 and identical content answers
 * the existing version.
 */
async function snapshotImages(
  db: Db,
  store: ArtifactStore,
  base: DatasetVersionView & { id: number },
  samples: SnapshotRow[],
  input: { data: DataSpec; jobId: string; actor: string; log: (line: string) => void },
): Promise<Snapshot> {
  const loaded = await loadDataset(db, store, base.ref);
  const label = loaded.columns.find((c) => c.role === 'label')?.name ?? 'label';
  const groups = loaded.columns.filter((c) => c.role === 'group').map((c) => c.name);
  const entries: TarEntry[] = [];
  const lines = [['file', label, ...groups].map(csvField).join(',')];
  const taken = new Set<string>();
  for (const item of loaded.images ?? []) {
    if (!taken.has(item.file)) entries.push({ path: item.file, data: new Uint8Array(await readFile(store.pathOf(item.sha256))) });
    taken.add(item.file);
    lines.push([item.file, item.label ?? '', ...groups.map((g) => item.groups[g] ?? '')].map(csvField).join(','));
  }
  let added = 0;
  let unlabelled = 0;
  let notImages = 0;
  let present = 0;
  for (const s of samples) {
    const b64 = typeof s.inputs.image === 'string' && Object.keys(s.inputs).length === 1 ? s.inputs.image : null;
    const bytes = b64 === null ? null : Buffer.from(b64, 'base64');
    const ext = bytes ? imageExt(bytes) : null;
    // A sample the archive parse could not decode would fail the whole snapshot: leave it out instead.
    if (!bytes || !ext || !(await sharp(bytes).metadata().then((m) => !!m.format, () => false))) {
      notImages++;
      continue;
    }
    if (s.label === undefined) {
      unlabelled++;
      continue;
    }
    const file = `samples/${s.deviceId}-${s.sampleId.replace(/[^A-Za-z0-9._-]/g, '_')}.${ext}`;
    if (taken.has(file)) {
      present++; // a snapshot this base came from has it already
      continue;
    }
    taken.add(file);
    entries.push({ path: file, data: new Uint8Array(bytes) });
    lines.push([file, s.label, ...groups.map(() => '')].map(csvField).join(','));
    added++;
  }
  const skipped = `${unlabelled} unlabelled sample(s) skipped${notImages ? `, ${notImages} non-image sample(s) skipped` : ''}`;
  if (!added) {
    input.log(`no new labelled image samples for ${base.ref} (${present ? `${present} already in it, ` : ''}${skipped}): training on ${base.ref}`);
    return { version: base, samples: 0 };
  }
  entries.push({ path: 'labels.csv', data: new TextEncoder().encode(lines.join('\n') + '\n') });
  const { created, version } = await createDatasetVersion(db, store, {
    name: base.name,
    bytes: writeTar(entries),
    format: 'tar',
    label,
    groups,
    source: { kind: 'snapshot', jobId: input.jobId, base: base.ref, samples: added, labelled: added, unlabelledSkipped: unlabelled },
    actor: input.actor,
  });
  input.log(`snapshot ${version.ref}: ${base.ref} + ${added} labelled image sample(s); ${skipped}${created ? '' : ' (identical to an existing version)'}`);
  return { version: await getDatasetVersion(db, version.ref), samples: added };
}

function imageExt(b: Uint8Array): 'jpg' | 'png' | null {
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpg';
  if (b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'png';
  return null;
}

function csvField(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

/** Writes a dataset version under `dir` for a trainer; returns the path to hand it (file or folder). */
export async function materialize(db: Db, store: ArtifactStore, version: DatasetVersionView, dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  if (version.kind === 'tabular') {
    const file = path.join(dir, `dataset.${version.format === 'jsonl' ? 'jsonl' : 'csv'}`);
    await copyFile(store.pathOf(version.sha256), file);
    return file;
  }
  const folder = path.join(dir, 'dataset');
  await mkdir(folder, { recursive: true });
  for (const e of await imageEntries(db, store, version)) {
    await writeFile(path.join(folder, e.path), e.data);
  }
  return folder;
}

/** An image version as files: each image under a unique flat name, plus labels.csv (file,label,groups…). */
async function imageEntries(db: Db, store: ArtifactStore, version: DatasetVersionView): Promise<TarEntry[]> {
  const loaded = await loadDataset(db, store, version.ref);
  const groups = loaded.columns.filter((c) => c.role === 'group').map((c) => c.name);
  const entries: TarEntry[] = [];
  const lines = [['file', 'label', ...groups].join(',')];
  for (const [i, item] of (loaded.images ?? []).entries()) {
    const name = `${String(i).padStart(6, '0')}-${path.posix.basename(item.file)}`;
    entries.push({ path: name, data: new Uint8Array(await readFile(store.pathOf(item.sha256))) });
    lines.push([name, item.label ?? '', ...groups.map((g) => item.groups[g] ?? '')].join(','));
  }
  entries.push({ path: 'labels.csv', data: new TextEncoder().encode(lines.join('\n') + '\n') });
  return entries;
}

/** What an external pipeline downloads: the file itself for tabular data, a tar (images + labels.csv) for images. */
export async function datasetDownload(db: Db, store: ArtifactStore, version: DatasetVersionView): Promise<{ bytes: Uint8Array; contentType: string; filename: string }> {
  if (version.kind === 'tabular') {
    const csv = version.format !== 'jsonl';
    return { bytes: new Uint8Array(await readFile(store.pathOf(version.sha256))), contentType: csv ? 'text/csv' : 'application/x-ndjson', filename: `${version.name}-${version.version}.${csv ? 'csv' : 'jsonl'}` };
  }
  return { bytes: writeTar(await imageEntries(db, store, version)), contentType: 'application/x-tar', filename: `${version.name}-${version.version}.tar` };
}
