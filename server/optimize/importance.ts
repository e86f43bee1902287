/**
 * Permutation feature importance for tabular models: how much the task metric worsens when one input
 * column is shuffled across rows (breaking its link to the label while keeping its distribution).
 * Accuracy drop for classifiers, RMSE increase for regressors; `repeats` shuffles per feature from one
 * seeded stream, so the same seed gives the same numbers. Rows are capped (`maxRows`) to bound the cost:
 * features × repeats batched passes over at most maxRows rows.
 *
 * @example
 * const imp = await permutationImportance(bytes, dataset, { repeats: 5, seed: 1 });
 * imp.features[0]; // { feature: 'f0', index: 0, mean: 0.31, std: 0.01, drops: [...] }
 */
import { mulberry32 } from '../../protocol/sketch/random.ts';
import type { InferenceSession } from 'onnxruntime-node';
import { OptimizeError } from './errors.ts';
import type { EvalDataset } from './evaluate.ts';
import { accuracy, argmaxRows, rmse } from './metrics.ts';
import { EVAL_SESSION_OPTIONS, inferAll, modelIo, openSession } from './runtime.ts';

export interface ImportanceOptions {
  /** Shuffles per feature. Default 5. */
  repeats?: number;
  seed?: number;
  /** Use at most this many rows (the first ones). Default 2000. */
  maxRows?: number;
  /** Inference batch size. Default 256. */
  batchSize?: number;
  sessionOptions?: InferenceSession.SessionOptions;
}

export interface FeatureImportance {
  feature: string;
  index: number;
  /** Mean metric degradation (accuracy points lost as a fraction, or RMSE increase). */
  mean: number;
  std: number;
  drops: number[];
}

export interface ImportanceReport {
  metric: 'accuracy' | 'rmse';
  baseline: number;
  rows: number;
  repeats: number;
  seed: number;
  /** Most important first. */
  features: FeatureImportance[];
}

export async function permutationImportance(bytes: Uint8Array, dataset: EvalDataset, opts: ImportanceOptions = {}): Promise<ImportanceReport> {
  if (dataset.sampleShape.length !== 1) throw new OptimizeError('invalid_options', `permutation importance needs tabular samples (one axis), got shape [${dataset.sampleShape}]`);
  if (!dataset.labels) throw new OptimizeError('invalid_options', 'permutation importance needs labels');
  const D = dataset.sampleShape[0];
  const total = dataset.inputs.length / D;
  const rows = Math.min(total, opts.maxRows ?? 2000);
  const x = dataset.inputs.slice(0, rows * D);
  const repeats = opts.repeats ?? 5;
  const seed = opts.seed ?? 1;
  const metric = dataset.task === 'classification' ? 'accuracy' : 'rmse';
  const labels = dataset.task === 'classification' ? Array.from({ length: rows }, (_, i) => dataset.labels![i]) : null;
  const io = modelIo(bytes, dataset.inputName, dataset.outputName);
  const session = await openSession(bytes, opts.sessionOptions ?? EVAL_SESSION_OPTIONS);
  try {
    const score = async (input: Float32Array): Promise<number> => {
      const out = await inferAll(session, io, input, [D], opts.batchSize ?? 256);
      if (labels) return accuracy(argmaxRows(out.data, out.width), labels);
      return rmse(out.data, Array.from({ length: out.data.length }, (_, k) => dataset.labels![k]));
    };
    const baseline = await score(x);
    const rand = mulberry32(seed);
    const features: FeatureImportance[] = [];
    const permuted = new Float32Array(x.length);
    const order = new Int32Array(rows);
    for (let j = 0; j < D; j++) {
      const drops: number[] = [];
      for (let r = 0; r < repeats; r++) {
        for (let i = 0; i < rows; i++) order[i] = i;
        for (let i = rows - 1; i > 0; i--) {
          const k = Math.floor(rand() * (i + 1));
          const t = order[i];
          order[i] = order[k];
          order[k] = t;
        }
        permuted.set(x);
        for (let i = 0; i < rows; i++) permuted[i * D + j] = x[order[i] * D + j];
        const s = await score(permuted);
        drops.push(metric === 'accuracy' ? baseline - s : s - baseline);
      }
      const mean = drops.reduce((a, b) => a + b, 0) / repeats;
      const std = Math.sqrt(drops.reduce((a, b) => a + (b - mean) ** 2, 0) / repeats);
      features.push({ feature: dataset.featureNames?.[j] ?? `x${j}`, index: j, mean, std, drops });
    }
    features.sort((a, b) => b.mean - a.mean || a.index - b.index);
    return { metric, baseline, rows, repeats, seed, features };
  } finally {
    await session.release();
  }
}
