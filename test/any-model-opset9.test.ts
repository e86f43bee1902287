// The whole loop for a CNN exported at opset 9 on a real agent process: pushed, evaluated on a
// labelled .npz tensor dataset through the CLI, optimized to per-channel int8 without labels (lifted
// to opset 13; compared with its parent on an unlabelled .npy), the variant evaluated on the same
// dataset, given a reference profile from the tensor dataset (summaries of the image tensor and of
// the output probability, plus the predicted class for prediction drift), bundled from a `tensor`
// definition, deployed, called through the local API, and its drift statistics arrive at the server.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { zipSync } from 'fflate';
import * as ort from 'onnxruntime-node';
import { api, waitFor } from '../agent/testing/harness.ts';
import { encodeNpy } from '../server/datasets/npy.ts';
import { opset9Cnn } from './helpers/odd-models.ts';
import { startPlaneWithAgent, type PlaneWithAgent } from './helpers/plane-with-agent.ts';
import { loopSteps, wave } from './helpers/tensor-loop.ts';

describe('any model, whole loop: an opset-9 CNN on a real agent', { timeout: 240_000 }, () => {
  let p: PlaneWithAgent;
  let steps: ReturnType<typeof loopSteps>;
  before(async () => {
    p = await startPlaneWithAgent({ site: 'lab', prefix: 'flotilla-any-loop-' });
    steps = loopSteps(p);
  });
  after(async () => {
    await p?.stop();
  });

  test('an opset-9 CNN: evaluated on a labelled .npz, int8 (lifted to opset 13) without labels, reference from tensors, deployed, drift statistics', async () => {
    const N = 40;
    await steps.push('old-cnn', opset9Cnn());
    const def = await steps.writeDef('old-cnn', {
      preprocess: { type: 'tensor', dims: { batch: 1 }, summaries: { image_mean: { input: 'image', stat: 'mean' }, image_std: { input: 'image', stat: 'std' }, top_prob: { output: 'probs', stat: 'max' } } },
      postprocess: { task: 'classification', output: 'probs', topK: 2 },
    });
    await steps.cli('bundles', 'build', 'old-cnn@1', '--def', def);

    const images = Array.from({ length: N }, (_, k) => wave(3 * 16 * 16, k));
    const probs = (await steps.run(opset9Cnn(), { image: new ort.Tensor('float32', Float32Array.from(images.flat()), [N, 3, 16, 16]) })).probs.data as Float32Array;
    const labels = Array.from({ length: N }, (_, k) => [0, 1, 2, 3].reduce((b, c) => (probs[k * 4 + c] > probs[k * 4 + b] ? c : b), 0));
    await writeFile(
      path.join(p.dir, 'old.npz'),
      zipSync({ 'image.npy': encodeNpy({ dtype: 'float32', shape: [N, 3, 16, 16], data: images.flat() }), 'label.npy': encodeNpy({ dtype: 'int64', shape: [N], data: labels }) }),
    );
    await writeFile(path.join(p.dir, 'old-x.npy'), encodeNpy({ dtype: 'float32', shape: [N, 3, 16, 16], data: images.flat() }));
    await steps.cli('datasets', 'push', path.join(p.dir, 'old.npz'), '--name', 'old-images');
    await steps.cli('datasets', 'push', path.join(p.dir, 'old-x.npy'), '--name', 'old-unlabelled');

    const parent = await steps.cli('models', 'evaluate', 'old-cnn@1', '--dataset', 'old-images@1');
    assert.equal(parent.report.metrics.accuracy, 1, 'labels are the parent\'s own top-1');
    // 40 samples: one top-1 flip is 2.5 points, past the default budgets (98 % agreement, 1 point).
    await steps.cli('models', 'budgets', 'old-cnn', '--min-agreement', '0.9', '--max-accuracy-drop', '0.05');
    const opt = await steps.cli('optimize', 'old-cnn@1', '--quantize', 'int8', '--per-channel', '--eval', 'old-unlabelled@1');
    assert.deepEqual([opt.version.ref, opt.report.inputs, opt.version.recipe.opsetUpgrade.from, opt.version.recipe.opsetUpgrade.to], ['old-cnn@2', 'dataset', 9, 13]);
    const variant = await steps.cli('models', 'evaluate', 'old-cnn@2', '--dataset', 'old-images@1');
    assert.ok(variant.report.metrics.accuracy >= 0.9, `int8 accuracy on the parent's labels ${variant.report.metrics.accuracy}`);

    const profile = await steps.cli('models', 'reference', 'old-cnn@2', '--dataset', 'old-images@1');
    assert.deepEqual(profile.features.map((f: { name: string }) => f.name).sort(), ['image_mean', 'image_std', 'top_prob']);
    await steps.deploy('old-cnn@2', def);

    for (let k = 0; k < 110; k++) {
      const r = await api(p.port, 'POST', '/v1/predict', { inputs: { image: { dims: [1, 3, 16, 16], data: wave(3 * 16 * 16, 500 + k) } } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.predictions.length, 2);
    }
    await waitFor(async () => (await steps.rowsOnServer('old-cnn@2')) === 110, '110 rows of statistics on the server', 30_000);
    const drift = await steps.cli('drift', 'old-cnn@2', '--window', '1h');
    assert.deepEqual(drift.features.map((f: { feature: string }) => f.feature).sort(), ['image_mean', 'image_std', 'top_prob']);
    assert.deepEqual(drift.outputs.map((o: { feature: string }) => o.feature).sort(), ['confidence', 'predictedClass'], 'prediction drift: the reference has the model\'s outputs');
    for (const f of drift.features) assert.equal(f.n, 110, f.feature);
  });
});
