/**
 * Evaluation inputs for models with several inputs (mixed element types, int64 scalars, a state
 * carried from one call to the next): one batch-1 feed per sample, run in order the way a device
 * runs a stream — each sample's state inputs are the previous sample's state outputs (the initial
 * value for the first). Plain data (numbers), so a task can cross into the analysis worker.
 *
 * @example
 * const out = await inferFeeds(session, { samples: [{ input: { type: 'float32', dims: [1, 512], data }, sr: { type: 'int64', dims: [], data: [16000] } }], state: [{ input: 'state', output: 'stateN', initial }] }, 'output');
 */
import type { InferenceSession } from 'onnxruntime-node';
import { ort, type Outputs } from './runtime.ts';

export interface FeedTensor {
  /** The model input's element type (float32, int64, …). */
  type: string;
  dims: number[];
  data: number[];
}

export interface TensorFeeds {
  /** One feed per sample: every model input but the carried state. */
  samples: Array<Record<string, FeedTensor>>;
  /** Inputs carried from the previous sample's output, starting from `initial`. */
  state: Array<{ input: string; output: string; initial: FeedTensor }>;
}

const ARRAYS: Record<string, (data: number[]) => ort.Tensor['data']> = {
  float32: (d) => Float32Array.from(d),
  float64: (d) => Float64Array.from(d),
  int8: (d) => Int8Array.from(d),
  uint8: (d) => Uint8Array.from(d),
  int16: (d) => Int16Array.from(d),
  uint16: (d) => Uint16Array.from(d),
  int32: (d) => Int32Array.from(d),
  uint32: (d) => Uint32Array.from(d),
  int64: (d) => BigInt64Array.from(d, (v) => BigInt(Math.round(v))),
  uint64: (d) => BigUint64Array.from(d, (v) => BigInt(Math.round(v))),
  bool: (d) => Uint8Array.from(d, (v) => (v ? 1 : 0)),
};

export function toOrtTensor(t: FeedTensor): ort.Tensor {
  const make = ARRAYS[t.type];
  if (!make) throw new Error(`inputs of type ${t.type} cannot be fed from numbers`);
  return new ort.Tensor(t.type as 'float32', make(t.data) as Float32Array, t.dims);
}

/** Batch-1 feeds for the first `max` samples with the initial state (latency and memory probes). */
export function firstFeeds(feeds: TensorFeeds, max: number): Array<Record<string, ort.Tensor>> {
  return feeds.samples.slice(0, max).map((s) => {
    const f: Record<string, ort.Tensor> = {};
    for (const [k, t] of Object.entries(s)) f[k] = toOrtTensor(t);
    for (const st of feeds.state) f[st.input] = toOrtTensor(st.initial);
    return f;
  });
}

/** Runs every sample in order, state carried; returns `outputName` as rows of its per-sample size. */
export async function inferFeeds(session: InferenceSession, feeds: TensorFeeds, outputName: string): Promise<Outputs> {
  const fetches = [...new Set([outputName, ...feeds.state.map((s) => s.output)])];
  let carried: Record<string, ort.Tensor> = Object.fromEntries(feeds.state.map((s) => [s.input, toOrtTensor(s.initial)]));
  let data: Float32Array | undefined;
  let width = 0;
  for (const [i, sample] of feeds.samples.entries()) {
    const f: Record<string, ort.Tensor> = { ...carried };
    for (const [k, t] of Object.entries(sample)) f[k] = toOrtTensor(t);
    const out = await session.run(f, fetches);
    const values = out[outputName].data as ArrayLike<number | bigint>;
    if (!data) {
      width = values.length;
      data = new Float32Array(feeds.samples.length * width);
    }
    if (values.length !== width) throw new Error(`output "${outputName}" has ${values.length} values for sample ${i + 1}, ${width} for the first`);
    for (let j = 0; j < width; j++) data[i * width + j] = Number(values[j]);
    carried = Object.fromEntries(feeds.state.map((s) => [s.input, out[s.output] as ort.Tensor]));
  }
  return { data: data ?? new Float32Array(0), width };
}
