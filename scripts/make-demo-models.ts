/**
 * Generates the demo models and their data with the project's own trainers (nothing downloaded):
 *
 *   tabular-demo.onnx        MLP 8 → 192 → 64 → 3, features [batch, 8] → logits [batch, 3] (low / medium / high)
 *   tabular-train.csv        its training rows (f0…f7, region, label)
 *   tabular-reference.csv    held-out rows: validation set and reference profile for drift
 *   image-demo.onnx          CNN (conv 8, conv 48, dense 256), image [batch, 3, 32, 32] → logits [batch, 3] (circle / square / triangle)
 *   images/                  held-out PNGs + labels.csv (file,label): validation and reference set
 *   demo-models.json         metrics, sizes, timings and training parameters (lineage for registration)
 *
 * Accuracies are measured with onnxruntime-node on the exported files, on held-out data (the images
 * are read back from the PNGs, so the files on disk are what was measured).
 *
 * Usage: npx tsx scripts/make-demo-models.ts [outDir=demo] [--quick]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DEMO_CNN, exportCnnOnnx, trainCnn } from '../server/training/cnn.ts';
import { evaluateOnnx } from '../server/training/evaluate.ts';
import { DEMO_MLP_HIDDEN, exportMlpOnnx, trainMlp } from '../server/training/mlp.ts';
import { makeShapes, readShapesFolder, toNchw, writeShapesFolder } from '../server/training/synthetic-shapes.ts';
import { FEATURES, featureMatrix, labelIndices, makeTabularRows, writeTabularCsv } from '../server/training/synthetic-tabular.ts';

export interface DemoOptions {
  /** Fewer training rows, images, CNN epochs and held-out images (≈ 40 % faster; held-out accuracy still ≥ 96 % measured). Default false. */
  quick?: boolean;
  /** Base seed; every dataset and trainer derives its seed from it. Default 1. */
  seed?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface DemoModelSummary {
  file: string;
  bytes: number;
  trainRows: number;
  heldOutRows: number;
  /** Held-out accuracy measured by onnxruntime-node on the exported file. */
  accuracy: number;
  trainAccuracy: number;
  trainMs: number;
  params: Record<string, number | string>;
}

export interface DemoSummary {
  outDir: string;
  quick: boolean;
  seed: number;
  tabular: DemoModelSummary;
  image: DemoModelSummary;
  totalMs: number;
}

export async function makeDemoModels(outDir: string, opts: DemoOptions = {}): Promise<DemoSummary> {
  const started = performance.now();
  const quick = opts.quick ?? false;
  const seed = opts.seed ?? 1;
  const log = opts.log ?? (() => {});
  await mkdir(outDir, { recursive: true });

  // Tabular: MLP.
  // 8 → 192 → 64 → 3: weights, not graph overhead, make up the file, as in real models (int8 ≈ 3.6× smaller).
  const tab = { rows: quick ? 2000 : 3000, reference: 1000, epochs: 30 };
  const trainRows = makeTabularRows({ n: tab.rows, seed: seed * 100 + 1 });
  const refRows = makeTabularRows({ n: tab.reference, seed: seed * 100 + 2 });
  await writeTabularCsv(join(outDir, 'tabular-train.csv'), trainRows);
  await writeTabularCsv(join(outDir, 'tabular-reference.csv'), refRows);
  log(`tabular: training MLP on ${tab.rows} rows`);
  const mlpParams = { trainer: 'mlp', seed: seed * 100 + 3, epochs: tab.epochs, hidden: DEMO_MLP_HIDDEN.join('-'), lr: 0.01, batchSize: 32 };
  const mlp = trainMlp(trainRows, { ...mlpParams, hidden: DEMO_MLP_HIDDEN });
  const mlpBytes = exportMlpOnnx(mlp, { 'flotilla.train_rows': String(tab.rows) });
  await writeFile(join(outDir, 'tabular-demo.onnx'), mlpBytes);
  const mlpEval = await evaluateOnnx(mlpBytes, { data: featureMatrix(refRows), dims: [refRows.length, FEATURES.length] }, labelIndices(refRows));

  // Images: CNN. Training images stay in memory; the held-out set goes to disk as PNGs.
  const img = { train: quick ? 1000 : 1500, heldOut: quick ? 150 : 300, epochs: quick ? 6 : 8 };
  log(`image: rendering ${img.train + img.heldOut} shapes`);
  const trainImgs = await makeShapes({ n: img.train, seed: seed * 100 + 4 });
  const heldOut = await makeShapes({ n: img.heldOut, seed: seed * 100 + 5 });
  const imagesDir = join(outDir, 'images');
  await writeShapesFolder(imagesDir, heldOut);
  log(`image: training CNN on ${img.train} images × ${img.epochs} epochs`);
  const cnnParams = { trainer: 'cnn', seed: seed * 100 + 6, epochs: img.epochs, lr: 0.01, batchSize: 16, head: 'globalmax' as const, channels: DEMO_CNN.channels!.join('-'), dense: DEMO_CNN.dense! };
  const { channels: _channels, ...cnnOptions } = cnnParams;
  const cnn = trainCnn(trainImgs, { ...cnnOptions, ...DEMO_CNN, onEpoch: (h) => log(`  epoch ${h.epoch}: loss ${h.loss.toFixed(3)}, train acc ${(h.accuracy * 100).toFixed(1)} %`) });
  const cnnBytes = exportCnnOnnx(cnn, { 'flotilla.train_images': String(img.train) });
  await writeFile(join(outDir, 'image-demo.onnx'), cnnBytes);
  const fromDisk = await readShapesFolder(imagesDir);
  const cnnEval = await evaluateOnnx(cnnBytes, { data: toNchw(fromDisk.pixels, fromDisk.n), dims: [fromDisk.n, 3, 32, 32] }, fromDisk.labels);

  const summary: DemoSummary = {
    outDir: resolve(outDir),
    quick,
    seed,
    tabular: {
      file: 'tabular-demo.onnx',
      bytes: mlpBytes.length,
      trainRows: tab.rows,
      heldOutRows: tab.reference,
      accuracy: mlpEval.accuracy,
      trainAccuracy: mlp.history.at(-1)!.accuracy,
      trainMs: Math.round(mlp.trainMs),
      params: mlpParams,
    },
    image: {
      file: 'image-demo.onnx',
      bytes: cnnBytes.length,
      trainRows: img.train,
      heldOutRows: img.heldOut,
      accuracy: cnnEval.accuracy,
      trainAccuracy: cnn.history.at(-1)!.accuracy,
      trainMs: Math.round(cnn.trainMs),
      params: cnnParams,
    },
    totalMs: 0,
  };
  summary.totalMs = Math.round(performance.now() - started);
  await writeFile(join(outDir, 'demo-models.json'), JSON.stringify(summary, null, 2) + '\n');
  return summary;
}

/** The summary as a small fixed-width table. */
export function formatDemoTable(s: DemoSummary): string {
  const rows = [
    ['model', 'train', 'held-out', 'accuracy', 'onnx size', 'train time'],
    ...(['tabular', 'image'] as const).map((k) => {
      const m = s[k];
      return [m.file, String(m.trainRows), String(m.heldOutRows), `${(m.accuracy * 100).toFixed(1)} %`, `${(m.bytes / 1024).toFixed(1)} KiB`, `${(m.trainMs / 1000).toFixed(1)} s`];
    }),
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')).join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const args = process.argv.slice(2);
  const outDir = args.find((a) => !a.startsWith('--')) ?? 'demo';
  const summary = await makeDemoModels(outDir, { quick: args.includes('--quick'), log: (l) => console.log(l) });
  console.log(`\n${formatDemoTable(summary)}\n\nwritten to ${summary.outDir} in ${(summary.totalMs / 1000).toFixed(1)} s`);
}
