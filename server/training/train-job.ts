/**
 * A training job as plain data — the built-in trainer, its data and options, optionally the parent
 * version's ONNX to fine-tune from — and the function that runs one. Plain data so the same job can
 * run in-process (scripts, tests) or in a worker thread (`trainInWorker`, for the server).
 *
 * @example
 * const r = await runTrainJob({ kind: 'mlp', rows, options: { seed: 1 } });
 * await writeFile('model.onnx', r.onnx);
 */
import { cnnWeightsFromOnnx, exportCnnOnnx, trainCnn, type CnnOptions } from './cnn.ts';
import type { TrainHistory } from './minibatch.ts';
import { exportMlpOnnx, mlpWeightsFromOnnx, trainMlp, type MlpOptions } from './mlp.ts';
import type { ShapeDataset } from './synthetic-shapes.ts';
import type { TabularRow } from './synthetic-tabular.ts';

interface JobCommon {
  /** The parent version's ONNX (exported by these trainers, fp32) to fine-tune from. */
  initOnnx?: Uint8Array;
  /** Extra ONNX metadata_props (e.g. lineage: parent version, dataset version). */
  metadata?: Record<string, string>;
}

export type TrainJob =
  | (JobCommon & { kind: 'mlp'; rows: TabularRow[]; options: Omit<MlpOptions, 'init' | 'onEpoch'> })
  | (JobCommon & { kind: 'cnn'; data: ShapeDataset; options: Omit<CnnOptions, 'init' | 'onEpoch'> });

export interface TrainJobResult {
  kind: TrainJob['kind'];
  onnx: Uint8Array;
  history: TrainHistory[];
  trainMs: number;
  /** Training-set size. */
  samples: number;
}

/** Runs a job on the calling thread (blocks it for the training time). */
export async function runTrainJob(job: TrainJob, onEpoch?: (h: TrainHistory) => void): Promise<TrainJobResult> {
  if (job.kind === 'mlp') {
    const init = job.initOnnx ? mlpWeightsFromOnnx(job.initOnnx) : undefined;
    const m = trainMlp(job.rows, { ...job.options, init, onEpoch });
    return { kind: 'mlp', onnx: exportMlpOnnx(m, job.metadata), history: m.history, trainMs: m.trainMs, samples: job.rows.length };
  }
  if (job.kind === 'cnn') {
    const init = job.initOnnx ? cnnWeightsFromOnnx(job.initOnnx) : undefined;
    const m = trainCnn(job.data, { ...job.options, init, onEpoch });
    return { kind: 'cnn', onnx: exportCnnOnnx(m, job.metadata), history: m.history, trainMs: m.trainMs, samples: job.data.n };
  }
  throw new Error(`unknown trainer kind: ${(job as { kind: unknown }).kind}`);
}
