// `flotilla datasets push|ls|versions|show`: versioned, content-addressed datasets.
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Command } from 'commander';
import { writeTar, type TarEntry } from '../../datasets/tar.ts';
import { call, type Api } from '../api.ts';
import type { CliConfig } from '../env.ts';
import { CliError, emit, keyValues, table, type Output } from '../output.ts';

const collect = (v: string, prev: string[]) => [...prev, v];
const FORMATS: Record<string, string> = { '.csv': 'csv', '.jsonl': 'jsonl', '.ndjson': 'jsonl', '.tar': 'tar', '.npy': 'npy', '.npz': 'npz' };
const KNOWN_FORMATS = ['csv', 'jsonl', 'tar', 'npy', 'npz', 'tensors'];

/** Every regular file under `dir` (paths relative to it), so an image folder with labels.csv becomes one archive. */
async function packDirectory(dir: string): Promise<Uint8Array> {
  const entries: TarEntry[] = [];
  const walk = async (rel: string) => {
    for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) entries.push({ path: p, data: await readFile(path.join(dir, p)) });
    }
  };
  await walk('');
  if (!entries.some((e) => e.path === 'labels.csv')) throw new CliError(`${dir} has no labels.csv (columns: file, label, optional group columns)`, 2);
  return writeTar(entries.sort((a, b) => a.path.localeCompare(b.path)));
}

interface VersionLike {
  ref: string;
  kind: string;
  format: string;
  sha256: string;
  size: number;
  rows: number;
  columns: Array<{ name: string; type: string; role: string; values?: string[]; dtype?: string; dims?: number[] }>;
  source: Record<string, unknown>;
  createdAt: string;
  createdBy: string | null;
}

function showVersion(v: VersionLike): string {
  return `${keyValues({ ref: v.ref, kind: v.kind, format: v.format, rows: v.rows, size: v.size, sha256: v.sha256, source: v.source, createdAt: v.createdAt, createdBy: v.createdBy })}\n\n${table(
    v.columns.map((c) => ({ ...c, values: c.dims ? `${c.dtype} [${c.dims.join(', ')}] per sample` : c.values ? (c.values.length > 8 ? `${c.values.slice(0, 8).join(',')},… (${c.values.length})` : c.values.join(',')) : '-' })),
    ['name', 'type', 'role', 'values'],
  )}`;
}

export function registerDatasetCommands(program: Command, ctx: { api: () => Api; out: () => Output; config: () => CliConfig }) {
  const datasets = program.command('datasets').description('versioned, content-addressed datasets (evaluation, reference profiles, training)');

  datasets
    .command('push <path>')
    .description('push a CSV / JSON lines file, a .tar of images, an image folder with labels.csv (file,label[,group…]), or a tensor dataset (.npy, .npz, JSON lines of named tensors with --format tensors) as the next version')
    .requiredOption('--name <dataset>', 'dataset name')
    .option('--label <column>', 'label column (default: "label" when present)')
    .option('--group <column>', 'group attribute column for fairness slices, repeatable', collect, [])
    .option('--id <column>', 'row id column (default: "id" when present)')
    .option('--format <format>', 'csv | jsonl | tar | npy | npz | tensors (default: from the extension; tensors = JSON lines of {"inputs": {name: tensor}, "label"?, "outputs"?})')
    .option('--description <text>', 'what the dataset is')
    .action(async (target: string, o: { name: string; label?: string; group: string[]; id?: string; format?: string; description?: string }) => {
      const info = await stat(target).catch(() => null);
      if (!info) throw new CliError(`no such file or directory: ${target}: give a .csv, .jsonl, .json, .tar, .npy or .npz file, or an image folder`, 2);
      const format = info.isDirectory() ? 'tar' : (o.format ?? FORMATS[path.extname(target).toLowerCase()]);
      if (!format || !KNOWN_FORMATS.includes(format)) throw new CliError(`cannot tell the format of ${target}: pass --format ${KNOWN_FORMATS.join('|')}`, 2);
      const config = ctx.config();
      ctx.api(); // validates URL and token are configured
      const url = new URL(`/api/v1/datasets/${encodeURIComponent(o.name)}/versions`, config.url);
      url.searchParams.set('format', format);
      url.searchParams.set('file', path.basename(target));
      if (o.label) url.searchParams.set('label', o.label);
      for (const g of o.group) url.searchParams.append('group', g);
      if (o.id) url.searchParams.set('id', o.id);
      if (o.description) url.searchParams.set('description', o.description);
      const headers = { authorization: `Bearer ${config.token}`, 'content-type': 'application/octet-stream' };
      // A file streams; a folder is packed as a tar in memory first (image sets a CLI pushes are small).
      const request = info.isDirectory()
        ? packDirectory(target).then((tar) => fetch(url, { method: 'POST', headers: { ...headers, 'content-length': String(tar.length) }, body: Buffer.from(tar) }))
        : fetch(url, {
            method: 'POST',
            headers: { ...headers, 'content-length': String(info.size) },
            body: Readable.toWeb(createReadStream(target)) as ReadableStream,
            duplex: 'half',
          } as RequestInit);
      const res = (await call(request)) as unknown as { created: boolean; version: VersionLike };
      const v = res.version;
      emit(ctx.out(), res, () => `${res.created ? 'pushed' : 'unchanged: identical content is'} ${v.ref} (${v.kind}, ${v.rows} rows, ${v.columns.length} columns, sha256 ${v.sha256.slice(0, 12)}…)`);
    });

  datasets
    .command('ls')
    .description('list datasets')
    .action(async () => {
      const res = await call(ctx.api().api.v1.datasets.$get({ query: {} }));
      emit(ctx.out(), res, () => table(res.datasets, ['name', 'versions', 'latest', 'updatedAt', 'description']));
    });

  datasets
    .command('versions <name>')
    .description('list the versions of a dataset, newest first')
    .action(async (name: string) => {
      const res = await call(ctx.api().api.v1.datasets[':name'].versions.$get({ param: { name }, query: {} }));
      emit(ctx.out(), res, () => table(res.versions.map((v) => ({ ...v, sha256: v.sha256.slice(0, 12) })), ['ref', 'kind', 'format', 'rows', 'size', 'sha256', 'createdAt']));
    });

  datasets
    .command('show <ref>')
    .description('show a dataset version (name@N, or name for the newest): columns with types and roles')
    .action(async (ref: string) => {
      const at = ref.indexOf('@');
      const name = at === -1 ? ref : ref.slice(0, at);
      const version = at === -1 ? 'latest' : ref.slice(at + 1);
      const v = await call(ctx.api().api.v1.datasets[':name'].versions[':version'].$get({ param: { name, version } }));
      emit(ctx.out(), v, () => showVersion(v));
    });
}
