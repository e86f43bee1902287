// The demo models' architectures (scripts/make-demo-models.ts: the MLP 8 → 192 → 64 → 3 and the shape
// CNN conv 8 → conv 48 → dense 256), trained here on a fraction of the data for a few passes so a
// browser test gets real trained networks in seconds. Their weights differ from `npm run demo:models`'s;
// the graphs (ops, shapes, inputs and outputs) are the same.
import { DEMO_CNN, exportCnnOnnx, trainCnn } from '../../server/training/cnn.ts';
import { DEMO_MLP_HIDDEN, exportMlpOnnx, trainMlp } from '../../server/training/mlp.ts';
import { makeShapes } from '../../server/training/synthetic-shapes.ts';
import { makeTabularRows } from '../../server/training/synthetic-tabular.ts';

/** The tabular demo MLP: features [batch, 8] → logits [batch, 3] (low / medium / high). */
export function quickDemoTabular(): Uint8Array {
  return exportMlpOnnx(trainMlp(makeTabularRows({ n: 400, seed: 1 }), { seed: 1, hidden: DEMO_MLP_HIDDEN, epochs: 3 }));
}

/** The shape CNN: image [batch, 3, 32, 32] → logits [batch, 3] (circle / square / triangle). */
export async function quickDemoImages(): Promise<Uint8Array> {
  return exportCnnOnnx(trainCnn(await makeShapes({ n: 150, seed: 1 }), { seed: 1, epochs: 1, ...DEMO_CNN }));
}
