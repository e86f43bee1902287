/**
 * Evaluates a model (and a variant against its parent) with onnxruntime-node on an evaluation dataset:
 * task metric (accuracy + macro F1 for classifiers with labels, RMSE for regressors with targets),
 * agreement with the parent, file and gzip size, load time, latency p50/p95 at batch 1 after warm-up,
 * and peak memory; then the quality budget (default: accuracy drop ≤ 1 point, agreement ≥ 98 %).
 *
 * Peak memory is measured in a child Node process per model, so earlier allocations of this process
 * cannot hide it: the child imports onnxruntime-node, records its RSS (baseline), creates the session
 * from the model file, runs `memoryRuns` batch-1 inferences and reports its RSS high-water mark, read
 * from VmHWM in /proc/self/status (Linux). Not `process.resourceUsage().maxRSS`: getrusage keeps the
 * high-water mark across fork + exec, so a child would report its (large) parent's RSS. Where /proc is
 * missing, the peak is the largest RSS sampled after loading and after each run. `rssDeltaBytes` =
 * peak − baseline: what loading and running this model added to an idle runtime. Best effort: arena
 * growth and allocator caching are included, and a failed probe leaves the field undefined rather than
 * failing the evaluation.
 *
 * @example
 * const parent = await evaluateModel(fp32, dataset);
 * const ev = await evaluateVariant(int8, parent, dataset);
 * const { accepted, reasons } = checkQualityBudget(ev); // reasons: ['agreement 97.2 % < 98 %']
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { InferenceSession } from 'onnxruntime-node';
import { accuracy, agreement, argmaxRows, macroF1, percentile, rmse } from './metrics.ts';
import { EVAL_SESSION_OPTIONS, inferAll, modelIo, openSession, ort, type ModelIo, type Outputs } from './runtime.ts';
import { firstFeeds, inferFeeds, type FeedTensor, type TensorFeeds } from './tensor-feeds.ts';

export interface EvalDataset {
  task: 'classification' | 'regression';
  /** Row-major float32 samples, each of `sampleShape` (e.g. [8] for tabular, [3, 32, 32] for images). */
  inputs: Float32Array;
  sampleShape: number[];
  /** Class indices (classification) or targets, one per output value (regression). Optional. */
  labels?: ArrayLike<number>;
  /** Group attribute columns (one value per sample) for the governance slice report. */
  groups?: Record<string, ArrayLike<string>>;
  /** Column names of a tabular input (permutation importance labels them). */
  featureNames?: string[];
  /** Model input / output to use; default the first declared ones. */
  inputName?: string;
  outputName?: string;
  /**
   * Models with several inputs (tensor-feeds.ts): one named feed per sample, state carried; then
   * `inputs` is empty and `sampleShape` is [] (no tabular permutation importance).
   */
  feeds?: TensorFeeds;
}

export interface EvalOptions {
  /** Session options; default {@link EVAL_SESSION_OPTIONS} (qdq folding on, one thread). */
  sessionOptions?: InferenceSession.SessionOptions;
  /**
   * Batch size for the metric pass. Default 1 — what devices run, and it matters: DynamicQuantizeLinear
   * picks one activation scale per batch, so integer variants give slightly batch-dependent outputs.
   */
  batchSize?: number;
  /** Latency at batch 1; `false` skips it. */
  latency?: false | { warmup?: number; maxIterations?: number; maxMs?: number };
  /** Peak-memory child process; `false` skips it. Default true. */
  memory?: boolean;
  memoryRuns?: number;
  /**
   * Regression agreement: a sample agrees when every output value is within abs + rel·scale of the
   * parent's, scale being the standard deviation of the parent's values of that output element over
   * the evaluation set (its spread: a tolerance relative to each value collapses for outputs near
   * zero). Default abs 1e-6 (float rounding), rel 0.05.
   */
  regressionTolerance?: { abs: number; rel: number };
}

export interface LatencyStats {
  p50Ms: number;
  p95Ms: number;
  meanMs: number;
  iterations: number;
}

export interface PeakMemory {
  /** High-water RSS of the child minus its RSS after importing onnxruntime. */
  rssDeltaBytes: number;
  peakRssBytes: number;
  baselineRssBytes: number;
  method: 'child-process VmHWM' | 'child-process sampled RSS';
}

export interface ModelMetrics {
  n: number;
  task: EvalDataset['task'];
  accuracy?: number;
  f1Macro?: number;
  rmse?: number;
  sizeBytes: number;
  gzipBytes: number;
  loadMs: number;
  latency?: LatencyStats;
  memory?: PeakMemory;
}

/** A model's metrics plus its raw outputs (kept so variants can be compared against it). */
export interface ModelEvaluation {
  metrics: ModelMetrics;
  outputs: Outputs;
  /** argmax per sample (classification). */
  predictions?: Int32Array;
}

export interface VariantEvaluation {
  parent: ModelMetrics;
  variant: ModelMetrics;
  /** Share of samples with the same prediction as the parent (classification: same argmax). */
  agreement: number;
  /** parent accuracy − variant accuracy, in [−1, 1] (0.01 = one point). */
  accuracyDrop?: number;
  f1Drop?: number;
  /** variant RMSE / parent RMSE − 1; absent when the parent's RMSE is 0 (the gate then compares absolutely). */
  rmseIncrease?: number;
  /** Regressors with targets: the targets' standard deviation, the scale of an absolute RMSE budget. */
  targetStd?: number;
  /** Largest |variant output − parent output| over all samples and outputs. */
  maxAbsOutputDiff: number;
  /** parent size / variant size (raw and gzip): 4 means 4× smaller. */
  sizeRatio: number;
  gzipRatio: number;
}

export async function evaluateModel(bytes: Uint8Array, dataset: EvalDataset, opts: EvalOptions = {}): Promise<ModelEvaluation> {
  const io = modelIo(bytes, dataset.inputName, dataset.outputName);
  const n = sampleCount(dataset);
  const started = performance.now();
  const session = await openSession(bytes, opts.sessionOptions ?? EVAL_SESSION_OPTIONS);
  const loadMs = performance.now() - started;
  try {
    const outputs = dataset.feeds ? await inferFeeds(session, dataset.feeds, io.outputName) : await inferAll(session, io, dataset.inputs, dataset.sampleShape, opts.batchSize ?? 1);
    const metrics: ModelMetrics = {
      n,
      task: dataset.task,
      sizeBytes: bytes.length,
      gzipBytes: gzipSync(bytes, { level: 9 }).length,
      loadMs,
    };
    let predictions: Int32Array | undefined;
    if (dataset.task === 'classification') {
      predictions = argmaxRows(outputs.data, outputs.width);
      if (dataset.labels) {
        if (dataset.labels.length !== n) throw new Error(`dataset has ${n} samples but ${dataset.labels.length} labels`);
        metrics.accuracy = accuracy(predictions, dataset.labels);
        metrics.f1Macro = macroF1(predictions, dataset.labels, outputs.width);
      }
    } else if (dataset.labels) {
      if (dataset.labels.length !== outputs.data.length) throw new Error(`regression targets: ${dataset.labels.length} values for ${outputs.data.length} outputs`);
      metrics.rmse = rmse(outputs.data, dataset.labels);
    }
    if (opts.latency !== false) metrics.latency = await measureLatency(session, io, dataset, opts.latency ?? {});
    if (opts.memory !== false) metrics.memory = await measurePeakMemory(bytes, io, dataset, opts);
    return { metrics, outputs, predictions };
  } finally {
    await session.release();
  }
}

/** Evaluates `variant` and compares it with `parent` (bytes, or an evaluation already computed). */
export async function evaluateVariant(variant: Uint8Array, parent: Uint8Array | ModelEvaluation, dataset: EvalDataset, opts: EvalOptions = {}): Promise<VariantEvaluation> {
  const p = parent instanceof Uint8Array ? await evaluateModel(parent, dataset, opts) : parent;
  const v = await evaluateModel(variant, dataset, opts);
  if (p.outputs.data.length !== v.outputs.data.length) throw new Error(`variant outputs ${v.outputs.data.length} values, parent ${p.outputs.data.length}`);
  let maxAbsOutputDiff = 0;
  for (let i = 0; i < p.outputs.data.length; i++) maxAbsOutputDiff = Math.max(maxAbsOutputDiff, Math.abs(p.outputs.data[i] - v.outputs.data[i]));
  let agree: number;
  if (dataset.task === 'classification') {
    agree = agreement(p.predictions!, v.predictions!);
  } else {
    const tol = opts.regressionTolerance ?? DEFAULT_REGRESSION_TOLERANCE;
    const w = p.outputs.width;
    const scale = columnStd(p.outputs.data, w);
    let ok = 0;
    for (let i = 0; i < p.metrics.n; i++) {
      let rowOk = true;
      for (let c = 0; c < w; c++) {
        if (Math.abs(v.outputs.data[i * w + c] - p.outputs.data[i * w + c]) > tol.abs + tol.rel * scale[c]) rowOk = false;
      }
      if (rowOk) ok++;
    }
    agree = p.metrics.n ? ok / p.metrics.n : NaN;
  }
  const pm = p.metrics;
  const vm = v.metrics;
  return {
    parent: pm,
    variant: vm,
    agreement: agree,
    accuracyDrop: pm.accuracy !== undefined && vm.accuracy !== undefined ? pm.accuracy - vm.accuracy : undefined,
    f1Drop: pm.f1Macro !== undefined && vm.f1Macro !== undefined ? pm.f1Macro - vm.f1Macro : undefined,
    rmseIncrease: pm.rmse !== undefined && vm.rmse !== undefined && pm.rmse > 0 ? vm.rmse / pm.rmse - 1 : undefined,
    targetStd: pm.rmse !== undefined && dataset.labels ? columnStd(dataset.labels, 1)[0] : undefined,
    maxAbsOutputDiff,
    sizeRatio: pm.sizeBytes / vm.sizeBytes,
    gzipRatio: pm.gzipBytes / vm.gzipBytes,
  };
}

export const DEFAULT_REGRESSION_TOLERANCE = { abs: 1e-6, rel: 0.05 };

/** Population standard deviation of each column of a row-major [n, width] matrix. */
export function columnStd(data: ArrayLike<number>, width: number): Float64Array {
  const n = Math.floor(data.length / width);
  const mean = new Float64Array(width);
  const out = new Float64Array(width);
  if (!n) return out;
  for (let i = 0; i < n * width; i++) mean[i % width] += data[i] / n;
  for (let i = 0; i < n * width; i++) out[i % width] += (data[i] - mean[i % width]) ** 2 / n;
  return out.map(Math.sqrt);
}

export interface QualityBudget {
  /** Largest allowed accuracy drop as a fraction (0.01 = one point). Default 0.01. */
  maxAccuracyDrop?: number;
  /** Smallest allowed agreement with the parent. Default 0.98. */
  minAgreement?: number;
  /**
   * Regressors: largest allowed relative RMSE increase. Default 0.05. The variant may have an RMSE of
   * this much more than the parent's or this fraction of the targets' standard deviation, whichever is
   * larger: for a (nearly) exact parent — RMSE 0 on targets that are its own outputs — a relative
   * increase means nothing, and the spread of what is predicted gives the scale instead.
   */
  maxRmseIncrease?: number;
}

export const DEFAULT_QUALITY_BUDGET: Required<QualityBudget> = { maxAccuracyDrop: 0.01, minAgreement: 0.98, maxRmseIncrease: 0.05 };

export interface BudgetVerdict {
  accepted: boolean;
  /** Why it was rejected (empty when accepted). */
  reasons: string[];
}

export function checkQualityBudget(ev: VariantEvaluation, budget: QualityBudget = {}): BudgetVerdict {
  const b = { ...DEFAULT_QUALITY_BUDGET, ...budget };
  const reasons: string[] = [];
  const pct = (v: number) => `${(v * 100).toFixed(2)} %`;
  if (ev.accuracyDrop !== undefined && ev.accuracyDrop > b.maxAccuracyDrop + 1e-12) {
    reasons.push(`accuracy drop ${(ev.accuracyDrop * 100).toFixed(2)} points > ${(b.maxAccuracyDrop * 100).toFixed(2)} (parent ${pct(ev.parent.accuracy!)}, variant ${pct(ev.variant.accuracy!)})`);
  }
  const [pr, vr] = [ev.parent.rmse, ev.variant.rmse];
  if (pr !== undefined && vr !== undefined) {
    const relative = pr * (1 + b.maxRmseIncrease);
    const absolute = b.maxRmseIncrease * (ev.targetStd ?? 0);
    if (relative >= absolute) {
      if (vr > relative + 1e-12 && pr === 0) reasons.push(`RMSE ${vr.toPrecision(4)} > 0 allowed: the parent is exact and the targets do not vary, so there is no scale to allow an error against`);
      else if (vr > relative + 1e-12) reasons.push(`RMSE up ${pct(vr / pr - 1)} > ${pct(b.maxRmseIncrease)} (parent ${pr.toPrecision(4)}, variant ${vr.toPrecision(4)})`);
    } else if (vr > absolute + 1e-12) {
      reasons.push(
        `RMSE ${vr.toPrecision(4)} > ${absolute.toPrecision(4)} allowed: the parent's RMSE (${pr.toPrecision(4)}) is near zero, so the budget is ${pct(b.maxRmseIncrease)} of the targets' standard deviation (${ev.targetStd!.toPrecision(4)}), larger than ${pct(b.maxRmseIncrease)} more than the parent's`,
      );
    }
  }
  if (!(ev.agreement >= b.minAgreement - 1e-12)) reasons.push(`agreement with parent ${pct(ev.agreement)} < ${pct(b.minAgreement)}`);
  return { accepted: reasons.length === 0, reasons };
}

function sampleCount(d: EvalDataset): number {
  if (d.feeds) {
    if (!d.feeds.samples.length) throw new Error('the dataset has no samples');
    return d.feeds.samples.length;
  }
  const per = d.sampleShape.reduce((a, b) => a * b, 1);
  const n = d.inputs.length / per;
  if (!Number.isInteger(n) || n === 0) throw new Error(`dataset inputs (${d.inputs.length} values) are not a whole number of samples of shape [${d.sampleShape}]`);
  return n;
}

/** Batch-1 latency: warm-up, then up to maxIterations runs or maxMs, cycling through the samples. */
async function measureLatency(session: InferenceSession, io: ModelIo, d: EvalDataset, o: { warmup?: number; maxIterations?: number; maxMs?: number }): Promise<LatencyStats> {
  const feeds = latencyFeeds(io, d);
  const warmup = o.warmup ?? 20;
  const maxIterations = o.maxIterations ?? 500;
  const maxMs = o.maxMs ?? 1000;
  for (let i = 0; i < warmup; i++) await session.run(feeds[i % feeds.length], [io.outputName]);
  const times: number[] = [];
  const until = performance.now() + maxMs;
  // At least 20 timed runs even for a slow model, so p95 means something.
  for (let i = 0; i < maxIterations && (i < 20 || performance.now() < until); i++) {
    const t = performance.now();
    await session.run(feeds[i % feeds.length], [io.outputName]);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return { p50Ms: percentile(times, 50), p95Ms: percentile(times, 95), meanMs: times.reduce((a, b) => a + b, 0) / times.length, iterations: times.length };
}

/** Up to 32 batch-1 feeds cycled through by the latency loops. */
function latencyFeeds(io: ModelIo, d: EvalDataset): Array<Record<string, ort.Tensor>> {
  if (d.feeds) return firstFeeds(d.feeds, 32);
  const per = d.sampleShape.reduce((a, b) => a * b, 1);
  const n = d.inputs.length / per;
  const batch = io.fixedBatch ?? 1;
  return Array.from({ length: Math.min(n, 32) }, (_, i) => {
    const x = new Float32Array(batch * per);
    x.set(d.inputs.subarray(i * per, (i + 1) * per));
    return { [io.inputName]: new ort.Tensor('float32', x, [batch, ...d.sampleShape]) };
  });
}

export interface LatencyCandidate {
  name: string;
  bytes: Uint8Array;
  sessionOptions?: InferenceSession.SessionOptions;
}

/**
 * Batch-1 latency of several models measured round-robin: `rounds` rounds, each running every model
 * `perRound` times in a rotating order. On a shared machine background load then lands on every model
 * alike, where measuring one model after another lets a burst of load decide the comparison.
 *
 * @example
 * const lat = await compareLatency([{ name: 'fp32', bytes: fp32 }, { name: 'int8', bytes: int8 }], dataset);
 * lat.get('int8')!.p50Ms / lat.get('fp32')!.p50Ms;
 */
export async function compareLatency(models: LatencyCandidate[], d: EvalDataset, o: { rounds?: number; perRound?: number; warmup?: number } = {}): Promise<Map<string, LatencyStats>> {
  const rounds = o.rounds ?? 10;
  const perRound = o.perRound ?? 100;
  const prepared = await Promise.all(
    models.map(async (m) => {
      const io = modelIo(m.bytes, d.inputName, d.outputName);
      const session = await openSession(m.bytes, m.sessionOptions ?? EVAL_SESSION_OPTIONS);
      return { m, io, session, feeds: latencyFeeds(io, d), times: [] as number[] };
    }),
  );
  try {
    for (const p of prepared) for (let i = 0; i < (o.warmup ?? 50); i++) await p.session.run(p.feeds[i % p.feeds.length], [p.io.outputName]);
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < prepared.length; k++) {
        const p = prepared[(k + r) % prepared.length];
        for (let i = 0; i < perRound; i++) {
          const t = performance.now();
          await p.session.run(p.feeds[i % p.feeds.length], [p.io.outputName]);
          p.times.push(performance.now() - t);
        }
      }
    }
    return new Map(
      prepared.map((p) => {
        const t = p.times.sort((a, b) => a - b);
        return [p.m.name, { p50Ms: percentile(t, 50), p95Ms: percentile(t, 95), meanMs: t.reduce((a, b) => a + b, 0) / t.length, iterations: t.length }];
      }),
    );
  } finally {
    for (const p of prepared) await p.session.release();
  }
}

const CHILD = `
const { readFileSync } = await import('node:fs');
const cfg = JSON.parse(readFileSync(process.argv[1], 'utf8'));
const ort = await import(cfg.ort);
const raw = readFileSync(cfg.sample);
const sample = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
const hwm = () => {
  try {
    const m = /VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
};
const baseline = process.memoryUsage().rss;
let sampled = baseline;
const session = await ort.InferenceSession.create(cfg.model, cfg.options);
sampled = Math.max(sampled, process.memoryUsage().rss);
const ARRAYS = { float32: Float32Array, float64: Float64Array, int8: Int8Array, uint8: Uint8Array, int16: Int16Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array, bool: Uint8Array };
const tensorOf = (t) => new ort.Tensor(t.type, t.type === 'int64' ? BigInt64Array.from(t.data, (v) => BigInt(Math.round(v))) : ARRAYS[t.type].from(t.data), t.dims);
const feed = cfg.feeds ? Object.fromEntries(Object.entries(cfg.feeds).map(([k, t]) => [k, tensorOf(t)])) : { [cfg.input]: new ort.Tensor('float32', sample, cfg.shape) };
for (let i = 0; i < cfg.runs; i++) {
  await session.run(feed);
  sampled = Math.max(sampled, process.memoryUsage().rss);
}
const high = hwm();
process.stdout.write(JSON.stringify({ baseline, peak: high ?? sampled, method: high === null ? 'sampled' : 'hwm' }));
`;

async function measurePeakMemory(bytes: Uint8Array, io: ModelIo, d: EvalDataset, opts: EvalOptions): Promise<PeakMemory | undefined> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-mem-'));
  try {
    const model = path.join(dir, 'model.onnx');
    await writeFile(model, bytes);
    const per = d.sampleShape.reduce((a, b) => a * b, 1);
    const batch = io.fixedBatch ?? 1;
    const sample = new Float32Array(batch * per);
    sample.set(d.inputs.subarray(0, per));
    const samplePath = path.join(dir, 'sample.bin');
    await writeFile(samplePath, new Uint8Array(sample.buffer));
    // Several inputs: the first sample with the initial state, as plain data.
    const feeds: Record<string, FeedTensor> | undefined = d.feeds && { ...d.feeds.samples[0], ...Object.fromEntries(d.feeds.state.map((s) => [s.input, s.initial])) };
    const cfg = {
      feeds,
      ort: pathToFileURL(createRequire(import.meta.url).resolve('onnxruntime-node')).href,
      model,
      options: opts.sessionOptions ?? EVAL_SESSION_OPTIONS,
      sample: samplePath,
      shape: [batch, ...d.sampleShape],
      input: io.inputName,
      runs: opts.memoryRuns ?? 20,
    };
    const cfgPath = path.join(dir, 'config.json');
    await writeFile(cfgPath, JSON.stringify(cfg));
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, cfgPath], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c) => (stdout += c));
      child.stderr.on('data', (c) => (stderr += c));
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve(stdout);
        else reject(new Error(`memory probe exited ${code}: ${stderr.slice(0, 300)}`));
      });
    });
    const { baseline, peak, method } = JSON.parse(out) as { baseline: number; peak: number; method: 'hwm' | 'sampled' };
    return { rssDeltaBytes: Math.max(0, peak - baseline), peakRssBytes: peak, baselineRssBytes: baseline, method: method === 'hwm' ? 'child-process VmHWM' : 'child-process sampled RSS' };
  } catch {
    return undefined;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
