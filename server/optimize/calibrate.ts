/**
 * Calibration support for the data-aware pruning path: read intermediate tensors of a model on a few
 * hundred samples (by exposing them as extra graph outputs), and solve small ridge least-squares
 * problems (Cholesky) to refit a layer after its inputs were pruned.
 *
 * Use a calibration split that is not the evaluation set, or the evaluation flatters the variant.
 */
import type { InferenceSession } from 'onnxruntime-node';
import { decodeModel, encodeModel } from './graph.ts';
import { modelIo, openSession, ort } from './runtime.ts';
import { toOrtTensor, type TensorFeeds } from './tensor-feeds.ts';

export interface CalibrationData {
  /** Row-major float32 samples of `sampleShape`, like an EvalDataset's inputs. */
  inputs: Float32Array;
  sampleShape: number[];
  inputName?: string;
  /** Models with several inputs: named batch-1 feeds, state carried (then `inputs` is empty). */
  feeds?: TensorFeeds;
  /** Use at most this many samples (the first ones). Default 512. */
  maxSamples?: number;
}

export interface Captured {
  data: Float32Array;
  /** Full shape, batch axis first. */
  dims: number[];
}

/** The named float tensors of `bytes` computed on the calibration samples, concatenated along the batch axis. */
export async function captureTensors(bytes: Uint8Array, names: string[], cal: CalibrationData, sessionOptions?: InferenceSession.SessionOptions): Promise<Map<string, Captured>> {
  const model = decodeModel(bytes);
  const graph = model.graph!;
  const wanted = [...new Set(names)];
  const existing = new Set((graph.output ?? []).map((o) => o.name));
  // Element type only, no shape: onnxruntime infers the shape of an added output.
  for (const name of wanted) if (!existing.has(name)) graph.output!.push({ name, type: { tensorType: { elemType: 1 } } });
  const augmented = encodeModel(model);
  const io = modelIo(augmented, cal.inputName);
  const per = cal.sampleShape.reduce((a, b) => a * b, 1);
  const n = Math.min(cal.feeds ? cal.feeds.samples.length : cal.inputs.length / per, cal.maxSamples ?? 512);
  // Named feeds run one sample at a time (the state of one is the input of the next).
  const batch = cal.feeds ? 1 : (io.fixedBatch ?? 64);
  const session = await openSession(augmented, sessionOptions);
  const parts = new Map<string, { chunks: Float32Array[]; dims: number[] }>();
  const stateOut = cal.feeds?.state.map((s) => s.output) ?? [];
  let carried: Record<string, ort.Tensor> = Object.fromEntries((cal.feeds?.state ?? []).map((s) => [s.input, toOrtTensor(s.initial)]));
  try {
    for (let start = 0; start < n; start += batch) {
      const rows = Math.min(batch, n - start);
      let feed: Record<string, ort.Tensor>;
      if (cal.feeds) {
        feed = { ...carried, ...Object.fromEntries(Object.entries(cal.feeds.samples[start]).map(([k, t]) => [k, toOrtTensor(t)])) };
      } else {
        const x = new Float32Array((io.fixedBatch ?? rows) * per);
        x.set(cal.inputs.subarray(start * per, (start + rows) * per));
        feed = { [io.inputName]: new ort.Tensor('float32', x, [io.fixedBatch ?? rows, ...cal.sampleShape]) };
      }
      const out = await session.run(feed, [...new Set([...wanted, ...stateOut])]);
      if (cal.feeds) carried = Object.fromEntries(cal.feeds.state.map((s) => [s.input, out[s.output] as ort.Tensor]));
      for (const name of wanted) {
        const t = out[name];
        const dims = t.dims.map(Number);
        const rowSize = dims.slice(1).reduce((a, b) => a * b, 1);
        const data = (t.data as Float32Array).slice(0, rows * rowSize);
        const entry = parts.get(name) ?? { chunks: [], dims: dims.slice(1) };
        entry.chunks.push(data);
        parts.set(name, entry);
      }
    }
  } finally {
    await session.release();
  }
  const result = new Map<string, Captured>();
  for (const [name, { chunks, dims }] of parts) {
    const total = chunks.reduce((s, c) => s + c.length, 0);
    const data = new Float32Array(total);
    let o = 0;
    for (const c of chunks) {
      data.set(c, o);
      o += c.length;
    }
    result.set(name, { data, dims: [n, ...dims] });
  }
  return result;
}

/**
 * Solves (XᵀX + λ·I) B = XᵀY for B, given G = XᵀX (k × k, row-major, symmetric positive semi-definite)
 * and R = XᵀY (k × m). λ = ridge × mean diagonal of G, so the regularisation is scale-free.
 * Returns B (k × m) or undefined when the factorisation fails.
 */
export function ridgeSolve(G: Float64Array, R: Float64Array, k: number, m: number, ridge = 1e-3): Float64Array | undefined {
  let trace = 0;
  for (let i = 0; i < k; i++) trace += G[i * k + i];
  const lambda = ridge * (trace / k || 1);
  // Cholesky: A = L Lᵀ, A = G + λI.
  const L = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j <= i; j++) {
      let s = G[i * k + j] + (i === j ? lambda : 0);
      for (let p = 0; p < j; p++) s -= L[i * k + p] * L[j * k + p];
      if (i === j) {
        if (!(s > 0)) return undefined;
        L[i * k + i] = Math.sqrt(s);
      } else {
        L[i * k + j] = s / L[j * k + j];
      }
    }
  }
  const B = new Float64Array(k * m);
  const z = new Float64Array(k);
  for (let c = 0; c < m; c++) {
    for (let i = 0; i < k; i++) {
      let s = R[i * m + c];
      for (let p = 0; p < i; p++) s -= L[i * k + p] * z[p];
      z[i] = s / L[i * k + i];
    }
    for (let i = k - 1; i >= 0; i--) {
      let s = z[i];
      for (let p = i + 1; p < k; p++) s -= L[p * k + i] * B[p * m + c];
      B[i * m + c] = s / L[i * k + i];
    }
  }
  return B;
}
