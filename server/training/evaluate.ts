/**
 * Evaluation of exported models with a real ONNX Runtime — what devices will run — rather than the
 * trainer's own forward pass: accuracy, predictions, confusion matrix, and a check that the ONNX
 * graph computes what the TypeScript forward pass computes (catches export mistakes: layouts,
 * transposes, padding).
 *
 * `runtime: 'web'` uses onnxruntime-web (wasm, also works in Node), the engine of the console's
 * playground; it is imported only when asked for.
 *
 * Note: `session.run` in onnxruntime-node blocks the event loop (DESIGN.md). These helpers are for
 * scripts, tests and training jobs (which block anyway), not for request handlers.
 *
 * @example
 * const r = await evaluateOnnx(bytes, { data: x, dims: [n, 8] }, labels);
 * r.accuracy; r.predictions; r.confusion[true][predicted];
 * const c = await compareOnnxWithForward(bytes, { data: x, dims: [n, 8] }, model.forward(x));
 * c.maxAbsDiff <= 1e-4;
 */
import * as ortNode from 'onnxruntime-node';
import { argmax } from './adam.ts';

export interface InputBatch {
  /** Row-major float32 data, first dim = batch. */
  data: Float32Array;
  dims: number[];
}

export interface EvalOptions {
  runtime?: 'node' | 'web';
  /** Defaults: the model's first input and first output. */
  inputName?: string;
  outputName?: string;
  /** Rows per `session.run`. Default 256. */
  batchSize?: number;
}

export interface RunResult {
  /** Output [n, classes], row-major. */
  logits: Float32Array;
  classes: number;
  /** Wall time of all `session.run` calls. */
  runMs: number;
}

export interface EvalResult extends RunResult {
  accuracy: number;
  predictions: Int32Array;
  /** confusion[actual][predicted] counts. */
  confusion: number[][];
}

type Ort = typeof ortNode;

async function loadOrt(runtime: 'node' | 'web'): Promise<Ort> {
  // Same API surface; the web build is typed separately, so cast to the node typings.
  return runtime === 'web' ? ((await import('onnxruntime-web')) as unknown as Ort) : ortNode;
}

/** Runs the model over the whole batch (in chunks) and returns the concatenated first output. */
export async function runOnnx(modelBytes: Uint8Array, input: InputBatch, opts: EvalOptions = {}): Promise<RunResult> {
  const ort = await loadOrt(opts.runtime ?? 'node');
  const session = await ort.InferenceSession.create(modelBytes);
  try {
    const inputName = opts.inputName ?? session.inputNames[0];
    const outputName = opts.outputName ?? session.outputNames[0];
    const n = input.dims[0];
    const rowSize = input.dims.slice(1).reduce((a, b) => a * b, 1);
    if (input.data.length !== n * rowSize) throw new Error(`input has ${input.data.length} values, dims ${input.dims.join('x')} need ${n * rowSize}`);
    const chunk = opts.batchSize ?? 256;
    const parts: Float32Array[] = [];
    let classes = 0;
    let runMs = 0;
    for (let start = 0; start < n; start += chunk) {
      const m = Math.min(chunk, n - start);
      const tensor = new ort.Tensor('float32', input.data.subarray(start * rowSize, (start + m) * rowSize), [m, ...input.dims.slice(1)]);
      const t0 = performance.now();
      const out = await session.run({ [inputName]: tensor });
      runMs += performance.now() - t0;
      const y = out[outputName];
      classes = Number(y.dims[1] ?? 1);
      parts.push(Float32Array.from(y.data as Float32Array));
    }
    const logits = new Float32Array(n * classes);
    let off = 0;
    for (const p of parts) {
      logits.set(p, off);
      off += p.length;
    }
    return { logits, classes, runMs };
  } finally {
    await session.release();
  }
}

/** Accuracy, argmax predictions and confusion matrix of a classifier against integer labels. */
export async function evaluateOnnx(modelBytes: Uint8Array, input: InputBatch, labels: ArrayLike<number>, opts: EvalOptions = {}): Promise<EvalResult> {
  const run = await runOnnx(modelBytes, input, opts);
  const { logits, classes } = run;
  const n = input.dims[0];
  if (labels.length !== n) throw new Error(`${labels.length} labels for ${n} inputs`);
  const predictions = new Int32Array(n);
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const p = argmax(logits, i * classes, classes);
    predictions[i] = p;
    if (p === labels[i]) correct++;
    if (labels[i] >= 0 && labels[i] < classes) confusion[labels[i]][p]++;
  }
  return { ...run, accuracy: n === 0 ? 0 : correct / n, predictions, confusion };
}

export interface ForwardCheck {
  maxAbsDiff: number;
  /** Share of rows where ONNX and TS pick the same class. */
  argmaxAgreement: number;
  ok: boolean;
}

/**
 * Compares the ONNX output with logits from the trainer's TS forward pass on the same inputs.
 * `ok` when every value is within `tolerance` (default 1e-4).
 */
export async function compareOnnxWithForward(
  modelBytes: Uint8Array,
  input: InputBatch,
  tsLogits: Float32Array,
  opts: EvalOptions & { tolerance?: number } = {},
): Promise<ForwardCheck> {
  const { logits, classes } = await runOnnx(modelBytes, input, opts);
  if (logits.length !== tsLogits.length) throw new Error(`ONNX gave ${logits.length} values, TS ${tsLogits.length}`);
  let maxAbsDiff = 0;
  for (let i = 0; i < logits.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(logits[i] - tsLogits[i]));
  const n = logits.length / classes;
  let agree = 0;
  for (let i = 0; i < n; i++) if (argmax(logits, i * classes, classes) === argmax(tsLogits, i * classes, classes)) agree++;
  return { maxAbsDiff, argmaxAgreement: n === 0 ? 1 : agree / n, ok: maxAbsDiff <= (opts.tolerance ?? 1e-4) };
}
