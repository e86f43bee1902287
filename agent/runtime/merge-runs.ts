/**
 * Dynamic batching in the inference worker: runs of one model that the worker read in one go (a message and those queued behind it) and
 * whose dim 0 is a batch of independent rows (tabular rows, images: the agent already stacks a batch
 * request's rows on that axis and answers them row by row) are concatenated along dim 0 into one
 * `session.run`, and the outputs are split back per run. For a small model the per-call cost of
 * onnxruntime (~20 µs) dominates the arithmetic, so 32 one-row runs merged cost little more than one.
 *
 * Only runs the caller marked `mergeable` are merged, and only when the model declares a symbolic
 * dim 0 on every input and output; raw `tensor` requests never are (their dim 0 may be a sequence,
 * and a model may mix rows along it). A merged run whose outputs do not carry the total row count
 * on dim 0 is not split: the worker runs those requests one by one instead.
 *
 * @example
 * const key = mergeKey(info, req); // undefined: run it alone
 * const { feeds, rows } = concatRuns([a.feeds, b.feeds]);
 * const parts = splitRows(outputs, rows); // [outputsOfA, outputsOfB], or undefined
 */
import type { HostTensor, TensorData, TensorMeta } from './tensor.ts';

type NumericData = Exclude<TensorData, string[]>;

/** Most rows one merged run carries (a bound on the temporary buffers). */
export const MAX_MERGED_ROWS = 1024;

function symbolicDim0(list: readonly TensorMeta[]): boolean {
  return list.length > 0 && list.every((m) => m.isTensor && m.type !== 'string' && typeof m.shape?.[0] === 'string');
}

/**
 * The group a run may be merged into (same model, same element types and trailing dims on every
 * input), or undefined when it must run alone.
 */
export function mergeKey(model: { inputs: readonly TensorMeta[]; outputs: readonly TensorMeta[] }, handle: number, feeds: Record<string, HostTensor>): string | undefined {
  if (!symbolicDim0(model.inputs) || !symbolicDim0(model.outputs)) return undefined;
  let key = String(handle);
  for (const m of model.inputs) {
    const t = feeds[m.name];
    if (!t || Array.isArray(t.data) || t.dims.length === 0 || !(t.dims[0] >= 1)) return undefined;
    key += `|${m.name}:${t.type}:${t.dims.slice(1).join('x')}`;
  }
  return key;
}

/** The runs' feeds concatenated along dim 0 (same names, types and trailing dims: see mergeKey). */
export function concatRuns(runs: ReadonlyArray<Record<string, HostTensor>>): { feeds: Record<string, HostTensor>; rows: number[] } {
  const rows = runs.map((f) => Object.values(f)[0].dims[0]);
  const total = rows.reduce((a, b) => a + b, 0);
  const feeds: Record<string, HostTensor> = {};
  for (const [name, first] of Object.entries(runs[0])) {
    const data = first.data as NumericData;
    const Ctor = data.constructor as new (n: number) => NumericData;
    const out = new Ctor((data.length / first.dims[0]) * total);
    let at = 0;
    for (const f of runs) {
      const part = f[name].data as NumericData;
      (out as Float32Array).set(part as Float32Array, at);
      at += part.length;
    }
    feeds[name] = { type: first.type, dims: [total, ...first.dims.slice(1)], data: out };
  }
  return { feeds, rows };
}

/**
 * The merged run's outputs cut back into each run's rows (each part in its own buffer, so it can be
 * transferred); undefined when an output's dim 0 is not the total row count.
 */
export function splitRows(outputs: Record<string, HostTensor>, rows: readonly number[]): Array<Record<string, HostTensor>> | undefined {
  const total = rows.reduce((a, b) => a + b, 0);
  const parts: Array<Record<string, HostTensor>> = rows.map(() => ({}));
  for (const [name, t] of Object.entries(outputs)) {
    if (Array.isArray(t.data) || t.dims[0] !== total) return undefined;
    const width = total === 0 ? 0 : t.data.length / total;
    let row = 0;
    rows.forEach((n, i) => {
      parts[i][name] = { type: t.type, dims: [n, ...t.dims.slice(1)], data: (t.data as NumericData).slice(row * width, (row + n) * width) };
      row += n;
    });
  }
  return parts;
}
