// Optimizer benchmark: for each demo model, fp32 against its int8 and pruned variants — file size,
// gzip size, latency p50/p95 at batch 1 (one intra-op thread, after warm-up), accuracy on held-out data,
// agreement with fp32, peak RSS of loading + running in a fresh process, and the quality-budget verdict.
// Pruning twice: by weight magnitude alone, and calibrated on training samples (prune-calibrated.ts).
// One extra row shows why qdq variants need `session.disable_quant_qdq`: the same file, unfolded.
import { OptimizeError, checkQualityBudget, compareLatency, evaluateModel, evaluateVariant, optimizeModel, type EvalDataset, type EvalOptions, type LatencyCandidate, type LatencyStats, type ModelMetrics, type OptimizeOptions, type CalibrationData } from '../server/optimize/index.ts';
import { EVAL_SESSION_OPTIONS } from '../server/optimize/runtime.ts';
import { demoImages, demoTabular } from '../server/optimize/demo-fixtures.ts';
import { buildCnn, makeStripeImages } from '../server/optimize/test-fixtures.ts';
import { printTable, type BenchRow } from './lib.ts';

interface Demo {
  name: string;
  bytes: Uint8Array;
  test: EvalDataset;
  /** Training samples: what calibrated pruning sees (never the held-out test set). */
  calibration: CalibrationData;
}

/** The two demo models as make-demo-models trains them, plus a CNN whose weights dominate its file. */
async function demoModels(): Promise<Demo[]> {
  const img = makeStripeImages(800, 1);
  return [
    { name: 'demo tabular MLP 8→192→64→3', ...demoTabular() },
    { name: 'demo shape CNN 32×32 (conv 8, conv 48, global max, dense 256)', ...(await demoImages()) },
    {
      name: 'fixture CNN 32×32 (conv 16, conv 32, 2,048-input head; 45 KB)',
      bytes: await buildCnn(img),
      test: makeStripeImages(500, 2),
      calibration: { inputs: img.inputs, sampleShape: img.sampleShape, maxSamples: 512 },
    },
  ];
}

const VARIANTS: Array<[string, OptimizeOptions]> = [
  ['int8-qdq', { quantize: { form: 'qdq', perChannel: false } }],
  ['int8-qdq-per-channel', { quantize: { form: 'qdq', perChannel: true } }],
  ['int8-integer', { quantize: { form: 'integer', perChannel: true } }],
  ['pruned-50%', { prune: { sparsity: 0.5, structured: false } }],
  ['pruned-50% calibrated', { prune: { sparsity: 0.5, structured: false } }],
  ['structured-pruned-50%', { prune: { sparsity: 0.5, structured: true } }],
  ['structured-pruned-50% calibrated', { prune: { sparsity: 0.5, structured: true } }],
  ['structured-pruned-25% calibrated', { prune: { sparsity: 0.25, structured: true } }],
];

// Latency is measured separately, round-robin over all variants of a model (see compareLatency).
const EVAL: EvalOptions = { latency: false };

export async function runOptimizeBench(): Promise<BenchRow[]> {
  const all: BenchRow[] = [];
  for (const demo of await demoModels()) {
    const parent = await evaluateModel(demo.bytes, demo.test, EVAL);
    const variants: Array<{ name: string; metrics: ModelMetrics; agreement: number; verdict?: string; detail?: string }> = [{ name: 'fp32', metrics: parent.metrics, agreement: 1, verdict: `held-out n=${parent.metrics.n}` }];
    const candidates: LatencyCandidate[] = [{ name: 'fp32', bytes: demo.bytes }];
    const refused: BenchRow[] = [];
    for (const [name, opts] of VARIANTS) {
      let result;
      try {
        result = await optimizeModel(demo.bytes, name.endsWith('calibrated') ? { ...opts, calibration: demo.calibration } : opts);
      } catch (err) {
        if (!(err instanceof OptimizeError)) throw err;
        refused.push({ benchmark: `${name} refused`, value: NaN, unit: '-', note: `${err.reason}: ${err.message}` });
        continue;
      }
      const { bytes, report } = result;
      const ev = await evaluateVariant(bytes, parent, demo.test, EVAL);
      const verdict = checkQualityBudget(ev);
      variants.push({
        name,
        metrics: ev.variant,
        agreement: ev.agreement,
        verdict: verdict.accepted ? 'budget: accepted' : `budget: rejected (${verdict.reasons.join('; ')})`,
        detail: opts.quantize ? `int8 share ${(report.quantizedParamShare * 100).toFixed(1)} %` : `sparsity ${(report.sparsity * 100).toFixed(1)} %`,
      });
      candidates.push({ name, bytes });
      if (name === 'int8-qdq-per-channel') {
        // The same file in a session without disable_quant_qdq: DequantizeLinear runs on every call.
        const { extra: _extra, ...unfolded } = EVAL_SESSION_OPTIONS;
        candidates.push({ name: `${name} (not folded)`, bytes, sessionOptions: unfolded });
      }
    }
    const latency = await compareLatency(candidates, demo.test, { rounds: 12, perRound: 150 });

    const rows: BenchRow[] = [];
    const base = parent.metrics;
    const baseLat = latency.get('fp32')!;
    const push = (variant: string, metric: string, value: number, unit: string, baselineValue: number, note?: string) =>
      rows.push({ benchmark: `${variant} ${metric}`, value, unit, ...(variant !== 'fp32' ? { baseline: `fp32 ${metric}`, baselineValue, ratio: value / baselineValue } : {}), ...(note ? { note } : {}) });
    const latencyRows = (name: string, l: LatencyStats, note?: string) => {
      push(name, 'latency p50', l.p50Ms * 1000, 'µs', baseLat.p50Ms * 1000, note ?? `${l.iterations} runs, interleaved`);
      push(name, 'latency p95', l.p95Ms * 1000, 'µs', baseLat.p95Ms * 1000);
    };
    for (const v of variants) {
      push(v.name, 'size', v.metrics.sizeBytes, 'bytes', base.sizeBytes, v.detail);
      push(v.name, 'gzip size', v.metrics.gzipBytes, 'bytes', base.gzipBytes);
      latencyRows(v.name, latency.get(v.name)!);
      push(v.name, 'accuracy', (v.metrics.accuracy ?? NaN) * 100, '%', (base.accuracy ?? NaN) * 100, v.verdict);
      push(v.name, 'agreement', v.agreement * 100, '%', 100);
      if (v.metrics.memory && base.memory) push(v.name, 'peak RSS delta', v.metrics.memory.rssDeltaBytes / 2 ** 20, 'MiB', base.memory.rssDeltaBytes / 2 ** 20);
    }
    rows.push(...refused);
    latencyRows('int8-qdq-per-channel (not folded)', latency.get('int8-qdq-per-channel (not folded)')!, 'session without session.disable_quant_qdq');
    printTable(`optimize: ${demo.name} (baseline: fp32)`, rows);
    all.push(...rows.map((r) => ({ ...r, benchmark: `${demo.name}: ${r.benchmark}` })));
  }
  return all;
}
