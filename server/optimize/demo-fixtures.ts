/**
 * The project's demo models, trained in memory with the built-in trainers (server/training), with a
 * held-out evaluation set and a calibration set (training rows, never the evaluation rows) each:
 * the tabular MLP (features [batch, 8] → logits [batch, 3], region as group attribute) and the shape
 * CNN (image [batch, 3, 32, 32] → logits [batch, 3]). Used by the demo-model tests and the benchmark.
 */
import { DEMO_CNN, exportCnnOnnx, trainCnn } from '../training/cnn.ts';
import { DEMO_MLP_HIDDEN, exportMlpOnnx, trainMlp, type MlpOptions } from '../training/mlp.ts';
import { makeShapes, toNchw } from '../training/synthetic-shapes.ts';
import { FEATURES, featureMatrix, labelIndices, makeTabularRows } from '../training/synthetic-tabular.ts';
import type { CalibrationData } from './calibrate.ts';
import type { EvalDataset } from './evaluate.ts';

export interface DemoModel {
  bytes: Uint8Array;
  test: EvalDataset & { labels: Int32Array };
  calibration: CalibrationData;
}

/** The tabular demo MLP (8 → 192 → 64 → 3) as make-demo-models trains it: 2,000 rows × 30 epochs, seed 1, ~4 s. */
export function demoTabular(opts: { trainRows?: number; testRows?: number } = {}): DemoModel {
  return tabular(opts, { seed: 1, hidden: DEMO_MLP_HIDDEN, epochs: 30 });
}

/**
 * The trainer's default MLP (8 → 16 → 3, one hidden layer, ~0.4 s): small enough for the optimizer's
 * mechanics tests to reason about unit by unit.
 */
export function smallTabular(opts: { trainRows?: number; testRows?: number } = {}): DemoModel {
  return tabular(opts, { seed: 1 });
}

function tabular(opts: { trainRows?: number; testRows?: number }, train: MlpOptions): DemoModel {
  const rows = makeTabularRows({ n: opts.trainRows ?? 2000, seed: 1 });
  const held = makeTabularRows({ n: opts.testRows ?? 1000, seed: 2 });
  return {
    bytes: exportMlpOnnx(trainMlp(rows, train)),
    test: {
      task: 'classification',
      inputs: featureMatrix(held),
      sampleShape: [FEATURES.length],
      labels: labelIndices(held),
      groups: { region: held.map((r) => r.region ?? 'unknown') },
      featureNames: [...FEATURES],
    },
    calibration: { inputs: featureMatrix(rows), sampleShape: [FEATURES.length] },
  };
}

/**
 * The shape CNN (conv 8, conv 48, global max, dense 256). Defaults match make-demo-models (1,500
 * images, 8 epochs, ~10 s here); tests pass fewer (1,000 × 6 epochs, ~6 s, ≈ 97 % held-out).
 */
export async function demoImages(opts: { trainImages?: number; epochs?: number; testImages?: number } = {}): Promise<DemoModel> {
  const train = await makeShapes({ n: opts.trainImages ?? 1500, seed: 1 });
  const held = await makeShapes({ n: opts.testImages ?? 400, seed: 2 });
  return {
    bytes: exportCnnOnnx(trainCnn(train, { seed: 1, epochs: opts.epochs ?? 8, ...DEMO_CNN })),
    test: { task: 'classification', inputs: toNchw(held.pixels, held.n), sampleShape: [3, 32, 32], labels: held.labels },
    calibration: { inputs: toNchw(train.pixels, train.n), sampleShape: [3, 32, 32], maxSamples: 256 },
  };
}
