// The whole loop for a model with two outputs of different shapes (`box` [batch, 4], `scores`
// [batch, 2, 3]) on a real agent process: pushed, evaluated on an .npz tensor dataset with reference
// outputs through the CLI, optimized to int8 without labels (compared with its parent on an
// unlabelled .npy), the variant evaluated on the same dataset, given a reference profile from the
// tensor dataset (the server computes the definition's summaries per sample, running the model for
// the output summary), bundled from a `tensor` definition, deployed, called through the local API,
// and its drift statistics arrive at the server.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { zipSync } from 'fflate';
import * as ort from 'onnxruntime-node';
import { api, waitFor } from '../agent/testing/harness.ts';
import { encodeNpy } from '../server/datasets/npy.ts';
import { twoHeadModel } from './helpers/odd-models.ts';
import { startPlaneWithAgent, type PlaneWithAgent } from './helpers/plane-with-agent.ts';
import { loopSteps, wave } from './helpers/tensor-loop.ts';

describe('any model, whole loop: a model with two outputs on a real agent', { timeout: 240_000 }, () => {
  let p: PlaneWithAgent;
  let steps: ReturnType<typeof loopSteps>;
  before(async () => {
    p = await startPlaneWithAgent({ site: 'lab', prefix: 'flotilla-any-loop-' });
    steps = loopSteps(p);
  });
  after(async () => {
    await p?.stop();
  });

  test('two outputs of different shapes: evaluated on an .npz, int8 without labels, reference from tensors, deployed, drift statistics', async () => {
    const N = 60;
    await steps.push('two-head', twoHeadModel());
    const def = await steps.writeDef('two-head', {
      preprocess: { type: 'tensor', dims: { batch: 1 }, summaries: { x_mean: { input: 'x', stat: 'mean' }, x_absmax: { input: 'x', stat: 'absmax' }, box_mean: { output: 'box', stat: 'mean' } } },
      postprocess: { task: 'outputs', output: 'box' },
    });
    await steps.cli('bundles', 'build', 'two-head@1', '--def', def); // optimize and evaluate read the tensor spec from it

    // The dataset: x per sample and reference outputs for `box` — the original framework's, which the
    // ONNX export matches to about 0.02 (the parent's own outputs would make its RMSE 0, and any
    // variant's increase over it infinite).
    const xs = Array.from({ length: N }, (_, k) => wave(16, k));
    const direct = await steps.run(twoHeadModel(), { x: new ort.Tensor('float32', Float32Array.from(xs.flat()), [N, 16]) });
    await writeFile(
      path.join(p.dir, 'two.npz'),
      zipSync({ 'x.npy': encodeNpy({ dtype: 'float32', shape: [N, 16], data: xs.flat() }), 'outputs.box.npy': encodeNpy({ dtype: 'float32', shape: [N, 4], data: Array.from(direct.box.data as Float32Array, (v, i) => v + 0.02 * Math.sin(i * 2.1)) }) }),
    );
    await writeFile(path.join(p.dir, 'two-x.npy'), encodeNpy({ dtype: 'float32', shape: [N, 16], data: xs.flat() }));
    assert.equal((await steps.cli('datasets', 'push', path.join(p.dir, 'two.npz'), '--name', 'two-frames')).version.kind, 'tensors');
    await steps.cli('datasets', 'push', path.join(p.dir, 'two-x.npy'), '--name', 'two-unlabelled');

    const parent = await steps.cli('models', 'evaluate', 'two-head@1', '--dataset', 'two-frames@1');
    assert.equal(parent.report.samples, N);
    assert.ok(parent.report.metrics.rmse > 0.01 && parent.report.metrics.rmse < 0.02, `the parent against the reference outputs: rmse ${parent.report.metrics.rmse}`);
    // Default budgets: box values near zero agree within 5 % of each output's spread (relative to each
    // value, the int8 variant agreed 75 %).
    const opt = await steps.cli('optimize', 'two-head@1', '--quantize', 'int8', '--eval', 'two-unlabelled@1');
    assert.deepEqual([opt.version.ref, opt.report.inputs, opt.report.samples], ['two-head@2', 'dataset', N]);
    assert.ok(opt.report.comparison.agreement >= 0.98, `int8 agreement ${opt.report.comparison.agreement}`);
    const variant = await steps.cli('models', 'evaluate', 'two-head@2', '--dataset', 'two-frames@1');
    assert.ok(variant.report.metrics.rmse < parent.report.metrics.rmse * 1.05, `int8 box rmse ${variant.report.metrics.rmse} within the 5 % budget of the parent's ${parent.report.metrics.rmse}`);

    const profile = await steps.cli('models', 'reference', 'two-head@2', '--dataset', 'two-frames@1');
    assert.equal(profile.rows, N);
    assert.deepEqual(profile.features.map((f: { name: string }) => f.name).sort(), ['box_mean', 'x_absmax', 'x_mean']);
    const built = await steps.deploy('two-head@2', def);
    assert.deepEqual(Object.keys(built.definition.reference.layout.features).sort(), ['box_mean', 'x_absmax', 'x_mean']);

    for (let k = 0; k < 120; k++) {
      const r = await api(p.port, 'POST', '/v1/predict', { inputs: { x: { dims: [1, 16], data: wave(16, 1000 + k) } } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      if (k === 0) {
        assert.deepEqual([r.body.outputs.box.dims, r.body.outputs.scores.dims], [[1, 4], [1, 2, 3]]);
        const fp32 = await steps.run(twoHeadModel(), { x: new ort.Tensor('float32', Float32Array.from(wave(16, 1000)), [1, 16]) });
        (r.body.outputs.box.data as number[]).forEach((v, i) => assert.ok(Math.abs(v - (fp32.box.data as Float32Array)[i]) < 0.05, `int8 box ${v} vs fp32 ${(fp32.box.data as Float32Array)[i]}`));
      }
    }
    await waitFor(async () => (await steps.rowsOnServer('two-head@2')) === 120, '120 rows of statistics on the server', 30_000);
    const drift = await steps.cli('drift', 'two-head@2', '--window', '1h');
    assert.deepEqual(drift.features.map((f: { feature: string }) => f.feature).sort(), ['box_mean', 'x_absmax', 'x_mean']);
    for (const f of drift.features) assert.equal(f.n, 120, f.feature);
  });

});
