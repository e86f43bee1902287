// The built-in trainers for the demo models (server/training): the tabular MLP and the shape CNN,
// trained (or fine-tuned from the parent's weights) in a worker thread on the job's snapshot, so the
// control plane's event loop keeps serving while it trains. A deterministic 85/15 split gives a
// held-out accuracy measured with onnxruntime on the exported file.
import { readFile, writeFile } from 'node:fs/promises';
import { evaluateOnnx } from '../../training/evaluate.ts';
import { readShapesFolder, sliceShapes, toNchw, IMAGE_CHANNELS, IMAGE_SIZE, type ShapeDataset } from '../../training/synthetic-shapes.ts';
import { FEATURES, featureMatrix, labelIndices, TABULAR_LABELS, type TabularLabel, type TabularRow } from '../../training/synthetic-tabular.ts';
import { trainInWorker } from '../../training/train-in-worker.ts';
import type { TrainJob } from '../../training/train-job.ts';
import { rowsFromCsv } from '../../drift/reference-service.ts';
import type { z } from 'zod';
import type { BuiltinTrainer } from '../retrain-policy.ts';
import type { TrainerContext, TrainerResult } from './trainer.ts';

const HOLDOUT = 0.15;

/**
 * Tabular snapshot rows → the MLP's rows. Rows without a usable label (e.g. captured samples nobody
 * labelled) cannot teach a classifier and are skipped; a missing or non-numeric feature is an error.
 */
export function tabularRowsOf(text: string, format: 'csv' | 'jsonl'): { rows: TabularRow[]; skipped: number } {
  const records: Array<Record<string, unknown>> =
    format === 'csv'
      ? rowsFromCsv(text).map((r) => r.values)
      : text
          .split(/\r?\n/)
          .filter((l) => l.trim())
          .map((l) => JSON.parse(l) as Record<string, unknown>);
  const rows: TabularRow[] = [];
  let skipped = 0;
  records.forEach((rec, i) => {
    const raw = rec.label;
    const label = typeof raw === 'number' ? TABULAR_LABELS[raw] : (raw as TabularLabel | undefined);
    if (!label || !TABULAR_LABELS.includes(label)) {
      skipped++;
      return;
    }
    const row = { label } as TabularRow;
    for (const f of FEATURES) {
      const v = rec[f];
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`row ${i + 1}: feature ${f} is ${v === undefined || v === null ? 'missing' : `not a number (${JSON.stringify(v)})`}`);
      row[f] = v;
    }
    rows.push(row);
  });
  return { rows, skipped };
}

function split(n: number): { train: number; test: number } {
  const test = n >= 40 ? Math.floor(n * HOLDOUT) : 0;
  return { train: n - test, test };
}

export async function runBuiltinTrainer(spec: z.infer<typeof BuiltinTrainer>, ctx: TrainerContext): Promise<TrainerResult> {
  const initOnnx = spec.fineTune && ctx.parentModelPath ? new Uint8Array(await readFile(ctx.parentModelPath)) : undefined;
  if (spec.fineTune && !initOnnx) ctx.log('runner', 'fineTune asked but the job has no parent version: training from scratch');
  const seed = spec.seed ?? 1;
  const metadata = { 'flotilla.job': ctx.jobId };
  let job: TrainJob;
  let evalInput: { data: Float32Array; dims: number[] } | null = null;
  let evalLabels: Int32Array | null = null;
  let samples: number;
  if (spec.model === 'tabular-demo-mlp') {
    if (ctx.datasetKind !== 'tabular') throw new Error('tabular-demo-mlp trains on a tabular dataset (CSV or JSONL)');
    const format = ctx.datasetPath.endsWith('.jsonl') ? 'jsonl' : 'csv';
    const { rows, skipped } = tabularRowsOf(await readFile(ctx.datasetPath, 'utf8'), format);
    if (skipped) ctx.log('runner', `${skipped} row(s) without a known label skipped`);
    if (rows.length < 10) throw new Error(`only ${rows.length} labelled row(s) in the snapshot: too few to train`);
    const { train, test } = split(rows.length);
    const trainRows = rows.slice(0, train);
    const testRows = rows.slice(train);
    if (test) {
      evalInput = { data: featureMatrix(testRows), dims: [testRows.length, FEATURES.length] };
      evalLabels = labelIndices(testRows);
    }
    samples = trainRows.length;
    job = { kind: 'mlp', rows: trainRows, options: { seed, epochs: spec.epochs, lr: spec.lr }, initOnnx, metadata };
  } else {
    if (ctx.datasetKind !== 'images') throw new Error('image-demo-cnn trains on an image dataset');
    const data: ShapeDataset = await readShapesFolder(ctx.datasetPath);
    if (data.n < 10) throw new Error(`only ${data.n} image(s) in the snapshot: too few to train`);
    const { train, test } = split(data.n);
    if (test) {
      evalInput = { data: toNchw(data.pixels, test, train), dims: [test, IMAGE_CHANNELS, IMAGE_SIZE, IMAGE_SIZE] };
      evalLabels = data.labels.slice(train);
    }
    samples = train;
    job = { kind: 'cnn', data: sliceShapes(data, 0, train), options: { seed, epochs: spec.epochs, lr: spec.lr }, initOnnx, metadata };
  }
  ctx.log('runner', `training ${spec.model} on ${samples} sample(s)${initOnnx ? ', fine-tuning the parent' : ''} in a worker thread`);
  const result = await trainInWorker(job, {
    signal: ctx.signal,
    onEpoch: (h) => ctx.log('stdout', `epoch ${h.epoch} loss ${h.loss.toFixed(4)} accuracy ${h.accuracy.toFixed(4)}`),
  });
  await writeFile(ctx.outputPath, result.onnx);
  const last = result.history.at(-1);
  const metrics: Record<string, number> = { trainMs: Math.round(result.trainMs), samples };
  if (last) Object.assign(metrics, { trainAccuracy: last.accuracy, trainLoss: last.loss });
  if (evalInput && evalLabels) {
    const ev = await evaluateOnnx(result.onnx, evalInput, evalLabels);
    metrics.accuracy = ev.accuracy;
    metrics.heldOut = evalLabels.length;
    ctx.log('runner', `held-out accuracy ${ev.accuracy.toFixed(4)} on ${evalLabels.length} sample(s)`);
  }
  return { kind: 'model', metrics, params: { model: spec.model, epochs: spec.epochs ?? null, lr: spec.lr ?? null, seed, fineTune: Boolean(initOnnx) } };
}
