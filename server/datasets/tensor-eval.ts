/**
 * Evaluation inputs for models with several inputs, or any model given a tensor dataset: named feeds
 * per sample (optimize/tensor-feeds.ts). What a sample does not hold comes from the model's `tensor`
 * bundle definition as the device would supply it — a pinned input (`fixed`, e.g. the int64 sample
 * rate) as pinned, a carried state from the previous sample's output. A dataset tensor fits its
 * model input when it has the input's rank, or the rank without the batch axis (then batch 1).
 *
 * Without a dataset, inputs are generated from the declared shapes like the bundle's smoke vectors
 * (firmware-bundles/seeded-tensors.ts): `ranges` when the definition gives them, standard normal
 * floats and 0..9 integers otherwise, symbolic dims from `dims` or 1.
 *
 * @example
 * const data = tensorEvalDataset(table, binding, 5000); // { task, feeds: { samples, state }, labels? }
 */
import { TensorPreprocess } from '../../firmware-bundles/definition.ts';
import { resolveShape } from '../../firmware-bundles/tensor-spec.ts';
import { mulberry32 } from '../../protocol/sketch/random.ts';
import { Invalid } from '../errors.ts';
import type { EvalDataset } from '../optimize/evaluate.ts';
import type { FeedTensor, TensorFeeds } from '../optimize/tensor-feeds.ts';
import type { TensorInfo } from '../onnx/inspect.ts';
import type { TensorTable } from './tensor-dataset.ts';

/** What tensor evaluation needs of a binding (see eval-dataset.ts ModelBinding). */
export interface TensorModelBinding {
  task: 'classification' | 'regression';
  /** Every input the model declares. */
  modelInputs: TensorInfo[];
  outputName?: string;
  classes?: string[];
  /** The model's `tensor` preprocessing, when a bundle definition gives one. */
  tensor?: TensorPreprocess;
}

const NO_SPEC: TensorPreprocess = TensorPreprocess.parse({ type: 'tensor' });

/** The declared shape with symbolic dims from the spec, else 1 (batch-1 evaluation). */
function concreteShape(m: TensorInfo, spec: TensorPreprocess): number[] {
  const named: Record<string, number> = { ...spec.dims };
  const shape = m.shape.map((d, i) => (typeof d === 'number' && d >= 0 ? d : typeof d === 'string' && d ? d : `__dim${i}`));
  for (const d of shape) if (typeof d === 'string' && !Object.hasOwn(named, d)) named[d] = 1;
  const r = resolveShape(shape, named);
  return 'dims' in r ? r.dims : [];
}

function stateOf(binding: TensorModelBinding, spec: TensorPreprocess): TensorFeeds['state'] {
  return spec.state.map((s) => {
    const m = binding.modelInputs.find((i) => i.name === s.input)!;
    const dims = concreteShape(m, spec);
    return { input: s.input, output: s.output, initial: { type: m.dtype, dims, data: new Array<number>(dims.reduce((a, b) => a * b, 1)).fill(s.initial) } };
  });
}

function pinned(m: TensorInfo, spec: TensorPreprocess): FeedTensor | undefined {
  if (!Object.hasOwn(spec.fixed, m.name)) return undefined;
  const f = spec.fixed[m.name];
  return { type: m.dtype, dims: m.shape.length === 0 ? [] : [...f.dims], data: [...f.data] };
}

function checkTypes(binding: TensorModelBinding): void {
  for (const m of binding.modelInputs) {
    if (!['float32', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'bool'].includes(m.dtype)) {
      throw Invalid(`input "${m.name}" is ${m.dtype}; evaluation feeds numeric and bool inputs`);
    }
  }
}

/** Inputs generated from the declared shapes (no dataset): `count` samples, state chained. */
export function generatedTensorFeeds(binding: TensorModelBinding, count: number, seed = 1): EvalDataset {
  checkTypes(binding);
  const spec = binding.tensor ?? NO_SPEC;
  const state = stateOf(binding, spec);
  const carried = new Set(state.map((s) => s.input));
  const samples: TensorFeeds['samples'] = [];
  for (let i = 0; i < count; i++) {
    const rand = mulberry32(seed + i);
    const feed: Record<string, FeedTensor> = {};
    for (const m of binding.modelInputs) {
      if (carried.has(m.name)) continue;
      const fixed = pinned(m, spec);
      if (fixed) {
        feed[m.name] = fixed;
        continue;
      }
      const dims = concreteShape(m, spec);
      const range = Object.hasOwn(spec.ranges, m.name) ? spec.ranges[m.name] : undefined;
      const data = new Array<number>(dims.reduce((a, b) => a * b, 1));
      for (let j = 0; j < data.length; j++) data[j] = draw(m.dtype, rand, range);
      feed[m.name] = { type: m.dtype, dims, data };
    }
    samples.push(feed);
  }
  return { task: binding.task, inputs: new Float32Array(0), sampleShape: [], feeds: { samples, state }, ...(binding.outputName && { outputName: binding.outputName }) };
}

function draw(type: string, rand: () => number, range: readonly [number, number] | undefined): number {
  if (range) return type.startsWith('float') ? Math.fround(range[0] + rand() * (range[1] - range[0])) : Math.round(range[0] + rand() * (range[1] - range[0]));
  if (type.startsWith('float')) return Math.fround(Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand()));
  if (type === 'bool') return rand() < 0.5 ? 0 : 1;
  return Math.floor(rand() * 10);
}

/** Dims a dataset sample is fed with: the model's rank, or batch 1 prepended. */
function fitDims(name: string, sampleDims: number[], m: TensorInfo): number[] {
  const dims = sampleDims.length === m.shape.length ? sampleDims : sampleDims.length + 1 === m.shape.length ? [1, ...sampleDims] : null;
  const fits = dims !== null && m.shape.every((d, i) => typeof d !== 'number' || d < 0 || d === dims[i]);
  if (!fits) throw Invalid(`dataset tensor "${name}" has samples of shape [${sampleDims}]; model input "${m.name}" is ${m.dtype} [${m.shape.map((d) => d ?? '?').join(', ')}]`);
  return dims;
}

function labelIndex(v: number | string, classes: string[] | undefined, row: number): number {
  if (classes) {
    const i = classes.indexOf(String(v));
    if (i >= 0) return i;
  }
  const n = Number(v);
  if (Number.isInteger(n) && n >= 0 && (!classes || n < classes.length)) return n;
  throw Invalid(`sample ${row + 1}: label ${JSON.stringify(v)} is not a class of the model${classes ? ` (classes: ${classes.join(', ')})` : ''}`);
}

/** A tensor dataset as named feeds for this model (the first `maxSamples` samples). */
export function tensorEvalDataset(table: TensorTable, binding: TensorModelBinding, maxSamples: number): EvalDataset & { truncatedFrom?: number } {
  checkTypes(binding);
  const spec = binding.tensor ?? NO_SPEC;
  const n = Math.min(table.n, maxSamples);
  const byName = new Map(binding.modelInputs.map((m) => [m.name, m]));
  // Which model input each dataset tensor feeds: by name; one leftover tensor feeds the one input nobody else feeds.
  const bound = new Map<string, TensorInfo>();
  const unnamed = table.tensors.filter((t) => !byName.has(t.name));
  for (const t of table.tensors) if (byName.has(t.name)) bound.set(t.name, byName.get(t.name)!);
  const stateInputs = new Set(spec.state.map((s) => s.input));
  const open = binding.modelInputs.filter((m) => ![...bound.values()].includes(m) && !Object.hasOwn(spec.fixed, m.name) && !stateInputs.has(m.name));
  if (unnamed.length === 1 && open.length === 1) bound.set(unnamed[0].name, open[0]);
  else if (unnamed.length) throw Invalid(`dataset tensor${unnamed.length > 1 ? 's' : ''} ${unnamed.map((t) => `"${t.name}"`).join(', ')} ${unnamed.length > 1 ? 'are' : 'is'} not an input of the model (inputs: ${binding.modelInputs.map((m) => m.name).join(', ')})`);
  const given = new Set([...bound.values()].map((m) => m.name));
  const missing = binding.modelInputs.filter((m) => !given.has(m.name) && !Object.hasOwn(spec.fixed, m.name) && !stateInputs.has(m.name));
  if (missing.length) {
    throw Invalid(`the dataset gives no ${missing.map((m) => `"${m.name}"`).join(', ')}: add ${missing.length > 1 ? 'them' : 'it'} to the dataset, or pin ${missing.length > 1 ? 'them' : 'it'} in the bundle definition (preprocess.fixed / preprocess.state)`);
  }
  const columns = table.tensors
    .filter((t) => bound.has(t.name))
    .map((t) => {
      const m = bound.get(t.name)!;
      return { m, dims: fitDims(t.name, t.sampleDims, m), per: t.sampleDims.reduce((a, b) => a * b, 1), data: t.data };
    });
  // A state the dataset gives is fed from the dataset (not carried).
  const state = stateOf(binding, spec).filter((s) => !given.has(s.input));
  const samples: TensorFeeds['samples'] = [];
  for (let i = 0; i < n; i++) {
    const feed: Record<string, FeedTensor> = {};
    for (const m of binding.modelInputs) {
      const fixed = !given.has(m.name) && pinned(m, spec);
      if (fixed) feed[m.name] = fixed;
    }
    for (const c of columns) feed[c.m.name] = { type: c.m.dtype, dims: c.dims, data: Array.from(c.data.subarray(i * c.per, (i + 1) * c.per)) };
    samples.push(feed);
  }
  let labels: ArrayLike<number> | undefined;
  if (table.labels) {
    const ls = table.labels.slice(0, n);
    labels = binding.task === 'classification' ? Int32Array.from(ls, (l, i) => labelIndex(l, binding.classes, i)) : Float64Array.from(ls, Number);
  } else if (binding.task === 'regression' && binding.outputName) {
    // Reference outputs of the evaluated output are its regression targets.
    const ref = table.outputs.find((o) => o.name === binding.outputName);
    if (ref) labels = ref.data.subarray(0, n * ref.sampleDims.reduce((a, b) => a * b, 1));
  }
  return {
    task: binding.task,
    inputs: new Float32Array(0),
    sampleShape: [],
    feeds: { samples, state },
    ...(labels && { labels }),
    ...(binding.outputName && { outputName: binding.outputName }),
    ...(table.n > n ? { truncatedFrom: table.n } : {}),
  };
}
