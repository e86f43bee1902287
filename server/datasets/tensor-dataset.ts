/**
 * Tensor datasets, for models whose inputs are not a row of features or an image: named tensors per
 * sample, with optional labels and reference outputs. Three ways in, one table out:
 *
 * - `.npy` (numpy): one array, first axis = samples; it feeds the model's one caller input.
 * - `.npz` (numpy `savez`/`savez_compressed`): one member per model input (`input.npy`, `sr.npy`, …),
 *   each with the samples on its first axis; `label` (or `labels`) is the label column; members named
 *   `outputs.<name>` are reference outputs (regression targets for that output).
 * - JSON lines (`--format tensors`): one sample per line,
 *   `{"inputs": {"input": {"dims": [1, 512], "data": […]}, "sr": 16000}, "label": 1, "outputs": {…}}`;
 *   a tensor is `{dims, data}`, a (nested) array, or a number (a scalar).
 *
 * Every sample has the same names and dims. What is not given (a pinned input, a carried state) comes
 * from the model's bundle definition at evaluation time (tensor-eval.ts).
 *
 * @example
 * const t = parseTensorDataset(bytes, 'npz'); // { n: 200, tensors: [{ name: 'input', dtype: 'float32', sampleDims: [1, 512], data }], labels }
 */
import { unzipSync } from 'fflate';
import { parseJsonLines } from '../drift/json-lines.ts';
import { Invalid } from '../errors.ts';
import { parseNpy } from './npy.ts';

export type TensorFormat = 'npy' | 'npz' | 'tensors';

export interface TensorColumn {
  name: string;
  dtype: string;
  /** One sample's dims (the array's shape without its first axis). */
  sampleDims: number[];
  /** n samples, row-major. */
  data: Float64Array;
}

export interface TensorTable {
  n: number;
  tensors: TensorColumn[];
  /** One label per sample (a class name or index, or a number). */
  labels?: Array<number | string>;
  /** Reference outputs by output name. */
  outputs: TensorColumn[];
}

/** Name of the tensor an `.npy` upload holds: it binds to the model's one caller input. */
export const NPY_TENSOR = 'x';
const MAX_SAMPLES = 1_000_000;

function column(name: string, dtype: string, shape: number[], data: Float64Array): TensorColumn {
  if (shape.length === 0) throw Invalid(`"${name}" is a scalar; put the samples on the first axis (shape [n, …])`);
  return { name, dtype, sampleDims: shape.slice(1), data };
}

function sameCount(cols: TensorColumn[], labels: unknown[] | undefined): number {
  const counts = new Map(cols.map((c) => [c.name, c.data.length / Math.max(1, c.sampleDims.reduce((a, b) => a * b, 1))]));
  if (labels) counts.set('label', labels.length);
  const n = [...counts.values()][0] ?? 0;
  const odd = [...counts].find(([, k]) => k !== n);
  if (odd) throw Invalid(`every array needs the same number of samples on its first axis: ${[...counts].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (n === 0) throw Invalid('the dataset has no samples');
  if (n > MAX_SAMPLES) throw Invalid(`the dataset has ${n} samples; at most ${MAX_SAMPLES} are accepted`);
  return n;
}

function fromNpz(bytes: Uint8Array, labelName?: string): TensorTable {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes);
  } catch (err) {
    throw Invalid(`not a readable .npz (zip) archive: ${(err as Error).message}`);
  }
  const tensors: TensorColumn[] = [];
  const outputs: TensorColumn[] = [];
  let labels: number[] | undefined;
  const wantLabel = labelName ?? (Object.hasOwn(files, 'label.npy') ? 'label' : 'labels');
  for (const [file, data] of Object.entries(files).sort(([a], [b]) => a.localeCompare(b))) {
    if (!file.endsWith('.npy')) continue;
    const name = file.slice(0, -4);
    const arr = parseNpy(data, file);
    if (name === wantLabel) {
      if (arr.shape.length !== 1) throw Invalid(`${file}: labels must be one value per sample (shape [n]), got [${arr.shape}]`);
      labels = Array.from(arr.data);
    } else if (name.startsWith('outputs.')) outputs.push(column(name.slice(8), arr.dtype, arr.shape, arr.data));
    else tensors.push(column(name, arr.dtype, arr.shape, arr.data));
  }
  if (labelName && !labels) throw Invalid(`label array "${labelName}.npy" is not in the archive (members: ${Object.keys(files).join(', ')})`);
  if (!tensors.length) throw Invalid(`the archive holds no input arrays (members: ${Object.keys(files).join(', ') || 'none'})`);
  return { n: sameCount([...tensors, ...outputs], labels), tensors, outputs, ...(labels && { labels }) };
}

/** A JSON tensor: `{dims, data}`, a nested array, or a number. */
function jsonTensor(v: unknown, where: string): { dims: number[]; data: number[] } {
  if (typeof v === 'number' || typeof v === 'boolean') return { dims: [], data: [Number(v)] };
  if (v && typeof v === 'object' && !Array.isArray(v) && 'data' in v) {
    const t = v as { dims?: unknown; data?: unknown };
    const flat = jsonTensor(t.data, where);
    const dims = Array.isArray(t.dims) && t.dims.every((d) => Number.isInteger(d) && (d as number) >= 0) ? (t.dims as number[]) : flat.dims;
    if (dims.reduce((a, b) => a * b, 1) !== flat.data.length) throw Invalid(`${where}: dims [${dims}] hold ${dims.reduce((a, b) => a * b, 1)} values, data has ${flat.data.length}`);
    return { dims, data: flat.data };
  }
  if (!Array.isArray(v)) throw Invalid(`${where}: a tensor is {dims, data}, a (nested) array of numbers, or a number`);
  if (v.length === 0) return { dims: [0], data: [] };
  const parts = v.map((x, i) => jsonTensor(x, `${where}[${i}]`));
  const inner = parts[0].dims;
  if (parts.some((p) => p.dims.join() !== inner.join())) throw Invalid(`${where}: a ragged array (rows of different shapes)`);
  return { dims: [v.length, ...inner], data: parts.flatMap((p) => p.data) };
}

function fromJsonLines(bytes: Uint8Array, labelName = 'label'): TensorTable {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw Invalid('the dataset is not UTF-8 text');
  }
  const cols = new Map<string, { dims: number[]; values: number[]; output: boolean }>();
  const labels: Array<number | string> = [];
  let n = 0;
  let names = '';
  for (const { line, value } of parseJsonLines(text)) {
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw Invalid(`line ${line}: expected {"inputs": {name: tensor, …}, "${labelName}"?: …, "outputs"?: {…}}`);
    const rec = value as Record<string, unknown>;
    const inputs = rec.inputs;
    if (!inputs || typeof inputs !== 'object' || Array.isArray(inputs)) throw Invalid(`line ${line}: "inputs" must be an object of named tensors`);
    const outs = rec.outputs && typeof rec.outputs === 'object' && !Array.isArray(rec.outputs) ? (rec.outputs as Record<string, unknown>) : {};
    const entries: Array<[string, unknown, boolean]> = [...Object.entries(inputs).map(([k, t]): [string, unknown, boolean] => [k, t, false]), ...Object.entries(outs).map(([k, t]): [string, unknown, boolean] => [k, t, true])];
    const these = entries.map(([k, , o]) => `${o ? 'outputs.' : ''}${k}`).sort().join(',');
    if (n > 0 && these !== names) throw Invalid(`line ${line}: tensors ${these} differ from the first line's ${names}`);
    names = these;
    for (const [name, t, output] of entries) {
      const key = `${output ? 'outputs.' : ''}${name}`;
      const parsed = jsonTensor(t, `line ${line}: ${key}`);
      const col = cols.get(key) ?? { dims: parsed.dims, values: [], output };
      if (col.dims.join() !== parsed.dims.join()) throw Invalid(`line ${line}: ${key} has dims [${parsed.dims}], the first line [${col.dims}]`);
      for (const x of parsed.data) {
        if (!Number.isFinite(x)) throw Invalid(`line ${line}: ${key} holds a value that is not a finite number`);
        col.values.push(x);
      }
      cols.set(key, col);
    }
    if (Object.hasOwn(rec, labelName)) {
      const l = rec[labelName];
      if (typeof l !== 'number' && typeof l !== 'string') throw Invalid(`line ${line}: "${labelName}" must be a number or a class name`);
      labels.push(l);
    }
    n++;
  }
  if (n === 0) throw Invalid('the dataset has no samples');
  if (labels.length && labels.length !== n) throw Invalid(`"${labelName}" is on ${labels.length} of ${n} lines: give every sample a label, or none`);
  const toColumn = (name: string, c: { dims: number[]; values: number[] }): TensorColumn => ({ name, dtype: c.values.every(Number.isInteger) ? 'int64' : 'float32', sampleDims: c.dims, data: Float64Array.from(c.values) });
  const tensors = [...cols].filter(([, c]) => !c.output).map(([k, c]) => toColumn(k, c));
  if (!tensors.length) throw Invalid('"inputs" names no tensor');
  const outputs = [...cols].filter(([, c]) => c.output).map(([k, c]) => toColumn(k.slice(8), c));
  return { n, tensors, outputs, ...(labels.length && { labels }) };
}

/** Parses a tensor dataset; `label` names the label array / field (default `label`, `labels` in an .npz). */
export function parseTensorDataset(bytes: Uint8Array, format: TensorFormat, label?: string): TensorTable {
  if (bytes.length === 0) throw Invalid('the dataset is empty');
  if (format === 'npy') {
    const arr = parseNpy(bytes);
    const col = column(NPY_TENSOR, arr.dtype, arr.shape, arr.data);
    return { n: sameCount([col], undefined), tensors: [col], outputs: [] };
  }
  if (format === 'npz') return fromNpz(bytes, label);
  return fromJsonLines(bytes, label);
}
