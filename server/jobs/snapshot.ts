// A job's training data: the policy's dataset (its newest version), plus — when the policy asks —
// the samples devices captured for the model (with their fed-back labels). When samples are added
// the combination is stored as a new content-addressed version of the same dataset (identical
// content answers the existing version), so the job's lineage names exactly what it trained on.
// `materialize` lays a version out as files a trainer can read: one CSV/JSONL file, or a folder of
// images with labels.csv.
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import type { Db } from '../db/client.ts';
import { createDatasetVersion, getDatasetVersion, loadDataset, type DatasetVersionView } from '../datasets/dataset-service.ts';
import { writeTar, type TarEntry } from '../datasets/tar.ts';
import { snapshotSamples } from '../samples/sample-snapshot.ts';
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
  if (base.kind !== 'tabular') {
    input.log(`samples are not added to image datasets: training on ${base.ref} as it is`);
    return { version: base, samples: 0 };
  }
  const samples = await snapshotSamples(db, { modelName: input.modelName, withLabels: input.data.includeLabels });
  if (!samples.length) {
    input.log(`no captured samples for ${input.modelName}: training on ${base.ref}`);
    return { version: base, samples: 0 };
  }
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
