import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { inspectOnnx } from '../onnx/inspect.ts';
import { compareOnnxWithForward, evaluateOnnx, runOnnx } from './evaluate.ts';
import { exportMlpOnnx, mlpFromWeights, mlpWeightsFromOnnx, trainMlp, type MlpModel } from './mlp.ts';
import { featureMatrix, labelIndices, makeTabularRows } from './synthetic-tabular.ts';

describe('MLP trainer', () => {
  const train = makeTabularRows({ n: 4000, seed: 11 });
  const heldOut = makeTabularRows({ n: 1000, seed: 12 });
  const x = featureMatrix(heldOut);
  const y = labelIndices(heldOut);
  const input = { data: x, dims: [heldOut.length, 8] };
  let model: MlpModel;
  let bytes: Uint8Array;

  before(() => {
    model = trainMlp(train, { seed: 13 });
    bytes = exportMlpOnnx(model);
  });

  it('trains in under 3 s', (t) => {
    t.diagnostic(`trained ${model.history.length} epochs in ${model.trainMs.toFixed(0)} ms, train accuracy ${model.history.at(-1)!.accuracy}`);
  });

  it('exports features [batch, 8] → logits [batch, 3] with Gemm/Relu at opset 13', () => {
    const info = inspectOnnx(bytes);
    assert.equal(info.opset, 13);
    assert.deepEqual(info.inputs, [{ name: 'features', dtype: 'float32', shape: ['batch', 8] }]);
    assert.deepEqual(info.outputs, [{ name: 'logits', dtype: 'float32', shape: ['batch', 3] }]);
    assert.deepEqual([...info.opTypes].sort(), ['Div', 'Gemm', 'Relu', 'Sub']);
  });

  it('reaches ≥ 90 % held-out accuracy in onnxruntime-node', async (t) => {
    const r = await evaluateOnnx(bytes, input, y);
    t.diagnostic(`held-out accuracy ${r.accuracy}, onnx ${bytes.length} bytes`);
    assert.ok(r.accuracy >= 0.9, `held-out accuracy ${r.accuracy}`);
    assert.equal(r.confusion.flat().reduce((a, b) => a + b, 0), heldOut.length);
  });

  it('ONNX logits equal the TS forward pass within 1e-4 (node and web runtimes)', async () => {
    const ts = model.forward(x);
    for (const runtime of ['node', 'web'] as const) {
      const c = await compareOnnxWithForward(bytes, input, ts, { runtime, tolerance: 1e-4 });
      assert.ok(c.ok, `${runtime}: max diff ${c.maxAbsDiff}`);
      assert.equal(c.argmaxAgreement, 1);
    }
  });

  it('gives the same predictions in onnxruntime-web as in onnxruntime-node', async () => {
    const node = await evaluateOnnx(bytes, input, y);
    const web = await evaluateOnnx(bytes, input, y, { runtime: 'web' });
    assert.deepEqual(web.predictions, node.predictions);
    assert.equal(web.accuracy, node.accuracy);
  });

  it('is deterministic: same data and seed give the same ONNX bytes', () => {
    const again = trainMlp(train, { seed: 13 });
    assert.deepEqual(exportMlpOnnx(again), bytes);
    assert.notDeepEqual(exportMlpOnnx(trainMlp(train, { seed: 14, epochs: 2 })), bytes);
  });

  it('fine-tunes from weights read back from the ONNX and recovers from drift', async () => {
    const weights = mlpWeightsFromOnnx(bytes);
    const back = mlpFromWeights(weights);
    const diff = Math.max(...Array.from(back.forward(x.subarray(0, 80)), (v, i) => Math.abs(v - model.forward(x.subarray(0, 80))[i])));
    assert.ok(diff < 1e-4, `weights read back differ by ${diff}`);

    const drifted = makeTabularRows({ n: 1000, seed: 15, shift: { f0: 2 } });
    const driftedEval = makeTabularRows({ n: 1000, seed: 16, shift: { f0: 2 } });
    const dx = { data: featureMatrix(driftedEval), dims: [driftedEval.length, 8] };
    const before = await evaluateOnnx(bytes, dx, labelIndices(driftedEval));
    const tuned = trainMlp(drifted, { seed: 17, init: weights });
    const after = await evaluateOnnx(exportMlpOnnx(tuned), dx, labelIndices(driftedEval));
    assert.ok(before.accuracy < 0.6, `the f0 sensor offset should break the model (got ${before.accuracy})`);
    assert.ok(after.accuracy >= 0.9, `fine-tuned accuracy on drifted data ${after.accuracy}`);
    assert.deepEqual(tuned.weights.mean, weights.mean, 'fine-tuning keeps the standardisation');
  });

  it('runOnnx rejects an input whose length does not match its dims', async () => {
    await assert.rejects(runOnnx(bytes, { data: new Float32Array(7), dims: [1, 8] }), /dims 1x8 need 8/);
  });
});
