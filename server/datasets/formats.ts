// Dataset content: tabular CSV / JSON lines parsed into typed columns with roles, and image archives
// (tar with a labels.csv) checked and turned into a manifest that names each image by sha256.
import { createHash } from 'node:crypto';
import path from 'node:path';
import sharp from 'sharp';
import { CsvError, parseCsv } from '../drift/csv.ts';
import { parseJsonLines } from '../drift/json-lines.ts';
import { Invalid } from '../errors.ts';
import { readTar, TarError } from './tar.ts';

export type CellValue = number | string | boolean | null;
export type DatasetFormat = 'csv' | 'jsonl' | 'tar' | 'npy' | 'npz' | 'tensors';
export type ColumnRole = 'feature' | 'label' | 'group' | 'id' | 'output';

export interface DatasetColumn {
  name: string;
  /** `numeric` when every non-empty cell is a finite number; `image` for the file column of an image set; `tensor` for a tensor dataset's arrays. */
  type: 'numeric' | 'categorical' | 'image' | 'tensor';
  role: ColumnRole;
  /** Tensors: element type and one sample's dims. */
  dtype?: string;
  dims?: number[];
  /** Distinct values of a label or group column (up to MAX_CLASSES), sorted. */
  values?: string[];
}

export interface RoleOptions {
  /** Label column; default `label` when there is one. */
  label?: string;
  /** Group attribute columns (fairness slices). */
  groups?: string[];
  /** Row id column; default `id` when there is one. */
  id?: string;
}

export interface TabularTable {
  columns: DatasetColumn[];
  rows: Array<Record<string, CellValue>>;
}

export interface ImageItem {
  file: string;
  sha256: string;
  size: number;
  label: string | null;
  groups: Record<string, string>;
}

/** What an image dataset version stores: the manifest; each image is its own content-addressed artifact. */
export interface ImageManifest {
  kind: 'images';
  columns: DatasetColumn[];
  items: ImageItem[];
}

const MAX_CLASSES = 1000;
const decoder = new TextDecoder('utf-8', { fatal: true });

function utf8(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw Invalid('the dataset is not UTF-8 text: send CSV or JSON lines (or a tar archive of images with --format tar)');
  }
}

/** Header + string cells (null for empty) from CSV or JSON lines; every row has every column. */
function readCells(bytes: Uint8Array, format: 'csv' | 'jsonl'): { header: string[]; rows: CellValue[][] } {
  const text = utf8(bytes);
  if (format === 'csv') {
    try {
      const { header, rows } = parseCsv(text);
      return { header, rows: rows.map((r) => r.map((c) => (c.trim() === '' ? null : c.trim()))) };
    } catch (err) {
      if (err instanceof CsvError) throw Invalid(err.message);
      throw err;
    }
  }
  const header: string[] = [];
  const index = new Map<string, number>();
  const records: Array<Record<string, CellValue>> = [];
  for (const { line, value: v } of parseJsonLines(text)) {
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw Invalid(`line ${line}: expected a JSON object (column → value)`);
    for (const [k, cell] of Object.entries(v)) {
      if (cell !== null && !['number', 'string', 'boolean'].includes(typeof cell)) throw Invalid(`line ${line}: "${k}" must be a number, string, boolean or null`);
      if (!index.has(k)) {
        index.set(k, header.length);
        header.push(k);
      }
    }
    records.push(v as Record<string, CellValue>);
  }
  return { header, rows: records.map((r) => header.map((h) => (Object.hasOwn(r, h) ? r[h] : null))) };
}

function rolesOf(header: string[], opts: RoleOptions): Map<string, ColumnRole> {
  const has = new Set(header);
  const list = header.join(', ');
  const roles = new Map<string, ColumnRole>(header.map((h) => [h, 'feature']));
  const label = opts.label ?? (has.has('label') ? 'label' : undefined);
  if (label !== undefined) {
    if (!has.has(label)) throw Invalid(`label column "${label}" is not in the dataset (columns: ${list})`);
    roles.set(label, 'label');
  }
  for (const g of opts.groups ?? []) {
    if (!has.has(g)) throw Invalid(`group column "${g}" is not in the dataset (columns: ${list})`);
    if (g === label) throw Invalid(`"${g}" cannot be both the label and a group column`);
    roles.set(g, 'group');
  }
  const id = opts.id ?? (has.has('id') && roles.get('id') === 'feature' ? 'id' : undefined);
  if (id !== undefined) {
    if (!has.has(id)) throw Invalid(`id column "${id}" is not in the dataset (columns: ${list})`);
    if (roles.get(id) !== 'feature') throw Invalid(`"${id}" cannot be the id column and a ${roles.get(id)} column`);
    roles.set(id, 'id');
  }
  return roles;
}

function distinct(values: CellValue[]): string[] | undefined {
  const set = new Set<string>();
  for (const v of values) {
    if (v === null) continue;
    set.add(String(v));
    if (set.size > MAX_CLASSES) return undefined;
  }
  return [...set].sort();
}

/** Parses a tabular dataset; numeric columns get numbers, the rest strings (booleans kept). */
export function parseTabular(bytes: Uint8Array, format: 'csv' | 'jsonl', opts: RoleOptions, requireFeatures = true): TabularTable {
  if (bytes.length === 0) throw Invalid(`the dataset is empty: give ${format === 'csv' ? 'a header line and at least one row' : 'at least one JSON object per line'}`);
  const { header, rows } = readCells(bytes, format);
  if (header.length === 0) throw Invalid('the dataset has no columns');
  if (rows.length === 0) throw Invalid('the dataset has a header but no rows');
  const roles = rolesOf(header, opts);
  const numeric = header.map((_, j) => rows.every((r) => r[j] === null || (typeof r[j] !== 'boolean' && r[j] !== '' && Number.isFinite(Number(r[j])))));
  const columns: DatasetColumn[] = header.map((name, j) => {
    const role = roles.get(name)!;
    const col: DatasetColumn = { name, type: numeric[j] ? 'numeric' : 'categorical', role };
    if (role === 'label' || role === 'group') {
      const values = distinct(rows.map((r) => r[j]));
      if (values) col.values = values;
    }
    return col;
  });
  if (requireFeatures && !columns.some((c) => c.role === 'feature')) throw Invalid('the dataset has no feature column (every column is a label, group or id)');
  const typed = rows.map((r) => {
    const out: Record<string, CellValue> = {};
    header.forEach((h, j) => {
      const v = r[j];
      out[h] = v === null ? null : numeric[j] ? Number(v) : typeof v === 'boolean' ? v : String(v);
    });
    return out;
  });
  return { columns, rows: typed };
}

const IMAGE_TYPES = new Set(['png', 'jpeg', 'webp', 'gif', 'tiff', 'avif', 'heif']);

/**
 * Checks an image archive: a `labels.csv` (columns `file`, the label, any group columns) at the top
 * or in one top-level folder, every listed file present and decodable. Returns the manifest and the
 * image bytes to store. Images the labels file does not list are left out.
 */
export async function parseImageArchive(bytes: Uint8Array, opts: RoleOptions): Promise<{ manifest: ImageManifest; blobs: Map<string, Uint8Array> }> {
  if (bytes.length === 0) throw Invalid('the dataset is empty: give a .tar of images with a labels.csv (file,label)');
  let entries;
  try {
    entries = readTar(bytes);
  } catch (err) {
    if (err instanceof TarError) throw Invalid(`not a readable tar archive: ${err.message}`);
    throw err;
  }
  const files = new Map(entries.map((e) => [path.posix.normalize(e.path.replace(/^\.\//, '')), e.data]));
  const labelFiles = [...files.keys()].filter((p) => path.posix.basename(p) === 'labels.csv').sort((a, b) => a.split('/').length - b.split('/').length);
  if (!labelFiles.length) throw Invalid('the archive has no labels.csv (columns: file, label, optional group columns)');
  const labelsPath = labelFiles[0];
  const base = path.posix.dirname(labelsPath);
  const labels = files.get(labelsPath)!;
  const header = utf8(labels).split(/\r?\n/, 1)[0].split(',').map((h) => h.trim().replace(/^\uFEFF/, '').replace(/^"(.*)"$/, '$1'));
  if (!header.includes('file')) throw Invalid('labels.csv needs a "file" column naming each image');
  const table = parseTabular(labels, 'csv', { ...opts, id: 'file' }, false);
  const label = table.columns.find((c) => c.role === 'label');
  const groups = table.columns.filter((c) => c.role === 'group');
  const blobs = new Map<string, Uint8Array>();
  const items: ImageItem[] = [];
  for (const [i, row] of table.rows.entries()) {
    const file = row.file;
    if (typeof file !== 'string' || !file) throw Invalid(`labels.csv line ${i + 2}: empty file name`);
    const data = files.get(path.posix.normalize(base === '.' ? file : `${base}/${file}`));
    if (!data) throw Invalid(`labels.csv line ${i + 2}: "${file}" is not in the archive`);
    const meta = await sharp(data)
      .metadata()
      .catch(() => null);
    if (!meta?.format || !IMAGE_TYPES.has(meta.format)) throw Invalid(`labels.csv line ${i + 2}: "${file}" is not a readable image`);
    const sha256 = createHash('sha256').update(data).digest('hex');
    blobs.set(sha256, data);
    items.push({
      file,
      sha256,
      size: data.length,
      label: label && row[label.name] !== null ? String(row[label.name]) : null,
      groups: Object.fromEntries(groups.map((g) => [g.name, row[g.name] === null ? '' : String(row[g.name])])),
    });
  }
  const columns: DatasetColumn[] = [{ name: 'file', type: 'image', role: 'id' }, ...table.columns.filter((c) => c.name !== 'file' && c.role !== 'feature')];
  const extra = table.columns.filter((c) => c.role === 'feature').map((c) => c.name);
  if (extra.length) throw Invalid(`labels.csv has columns that are neither the label nor a group: ${extra.join(', ')} (mark them with --group, or drop them)`);
  return { manifest: { kind: 'images', columns, items }, blobs };
}
