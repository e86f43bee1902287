/**
 * The project's demo models, trained in memory with the built-in trainers (server/training), with a
 * held-out evaluation set and a calibration set (training rows, never the evaluation rows) each:
 * the tabular MLP (features [batch, 8] → logits [batch, 3], region as group attribute) and the shape
 * CNN (image [batch, 3, 32, 32] → logits [batch, 3]). Used by the demo-model tests and the benchmark.
 */
import { exportCnnOnnx, trainCnn } from '../training/cnn.ts';
import { exportMlpOnnx, trainMlp } from '../training/mlp.ts';
import { makeShapes, toNchw } from '../training/synthetic-shapes.ts';
import { FEATURES, featureMatrix, labelIndices, makeTabularRows } from '../training/synthetic-tabular.ts';
import type { CalibrationData } from './calibrate.ts';
import type { EvalDataset } from './evaluate.ts';

export interface DemoModel {
  bytes: Uint8Array;
  test: EvalDataset & { labels: Int32Array };
  calibration: CalibrationData;
}

/** The tabular demo MLP as make-demo-models trains it (2,000 rows, seed 1), ~0.4 s. */
export function demoTabular(opts: { trainRows?: number; testRows?: number } = {}): DemoModel {
  const train = makeTabularRows({ n: opts.trainRows ?? 2000, seed: 1 });
  const held = makeTabularRows({ n: opts.testRows ?? 1000, seed: 2 });
  return {
    bytes: exportMlpOnnx(trainMlp(train, { seed: 1 })),
    test: {
      task: 'classification',
      inputs: featureMatrix(held),
      sampleShape: [FEATURES.length],
      labels: labelIndices(held),
      groups: { region: held.map((r) => r.region ?? 'unknown') },
      featureNames: [...FEATURES],
    },
    calibration: { inputs: featureMatrix(train), sampleShape: [FEATURES.length] },
  };
}

/**
 * The shape CNN. Defaults match make-demo-models (1,500 images, 8 epochs, ~5 s here, ≈ 99 % held-out);
 * tests pass fewer (1,000 × 6 epochs, ~3 s, ≈ 94 %).
 */
export async function demoImages(opts: { trainImages?: number; epochs?: number; testImages?: number } = {}): Promise<DemoModel> {
  const train = await makeShapes({ n: opts.trainImages ?? 1500, seed: 1 });
  const held = await makeShapes({ n: opts.testImages ?? 400, seed: 2 });
  return {
    bytes: exportCnnOnnx(trainCnn(train, { seed: 1, epochs: opts.epochs ?? 8 })),
    test: { task: 'classification', inputs: toNchw(held.pixels, held.n), sampleShape: [3, 32, 32], labels: held.labels },
    calibration: { inputs: toNchw(train.pixels, train.n), sampleShape: [3, 32, 32], maxSamples: 256 },
  };
}
