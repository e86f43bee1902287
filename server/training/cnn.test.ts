import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { inspectOnnx } from '../onnx/inspect.ts';
import { cnnFromWeights, cnnGradient, cnnWeightsFromOnnx, exportCnnOnnx, trainCnn, type CnnHead, type CnnModel, type CnnWeights } from './cnn.ts';
import { compareOnnxWithForward, evaluateOnnx } from './evaluate.ts';
import { Rng } from './random.ts';
import { makeShapes, sliceShapes, toNchw, type ShapeDataset } from './synthetic-shapes.ts';

function randomWeights(head: CnnHead, seed: number, dense = 0): CnnWeights {
  const rng = new Rng(seed);
  const r = (n: number, sd: number) => Array.from({ length: n }, () => rng.normal(0, sd));
  const flat = head === 'flatten' ? 6 * 64 : 6;
  const base = { head, c1: 4, c2: 6, classes: 3, w1: r(4 * 27, 0.3), b1: r(4, 0.1), w2: r(6 * 4 * 9, 0.25), b2: r(6, 0.1) };
  if (!dense) return { ...base, w3: r(3 * flat, 0.1), b3: r(3, 0.1) };
  return { ...base, w3: r(dense * flat, 0.3), b3: r(dense, 0.1), dense, w4: r(3 * dense, 0.3), b4: r(3, 0.1) };
}

describe('CNN trainer', () => {
  let train: ShapeDataset;
  let heldOut: ShapeDataset;
  let x: Float32Array;
  let model: CnnModel;
  let bytes: Uint8Array;
  const dims = () => [heldOut.n, 3, 32, 32];

  before(async () => {
    const all = await makeShapes({ n: 1500 + 500, seed: 21 });
    train = sliceShapes(all, 0, 1500);
    heldOut = sliceShapes(all, 1500, 2000);
    x = toNchw(heldOut.pixels, heldOut.n);
    model = trainCnn(train, { seed: 22 });
    bytes = exportCnnOnnx(model);
  });

  it('computes the same gradients as finite differences (both heads, with and without a dense layer)', async () => {
    const img = await makeShapes({ n: 1, seed: 3 });
    const image = toNchw(img.pixels, 1);
    for (const [head, dense] of [['globalmax', 0], ['flatten', 0], ['globalmax', 5]] as const) {
      const w = randomWeights(head, 4, dense);
      const { grads } = cnnGradient(w, image, img.labels[0]);
      const keys = (dense ? ['w1', 'b1', 'w2', 'b2', 'w3', 'b3', 'w4', 'b4'] : ['w1', 'b1', 'w2', 'b2', 'w3', 'b3']) as Array<'w1' | 'b1' | 'w2' | 'b2' | 'w3' | 'b3' | 'w4' | 'b4'>;
      const rng = new Rng(5);
      keys.forEach((k, p) => {
        for (let t = 0; t < 6; t++) {
          const arr = w[k]!;
          const i = rng.int(arr.length);
          const old = arr[i];
          const h = 1e-5;
          arr[i] = old + h;
          const up = cnnGradient(w, image, img.labels[0]).loss;
          arr[i] = old - h;
          const down = cnnGradient(w, image, img.labels[0]).loss;
          arr[i] = old;
          const numeric = (up - down) / (2 * h);
          const err = Math.abs(numeric - grads[p][i]);
          assert.ok(err < 1e-6 + 1e-4 * Math.abs(numeric), `${head} ${k}[${i}]: numeric ${numeric}, analytic ${grads[p][i]}`);
        }
      });
    }
  });

  it('training converges: the last epoch is more accurate than the first', (t) => {
    // Time is reported, not asserted (speed targets belong to benchmarks): ≈ 6 s alone on this machine.
    t.diagnostic(`trained ${model.history.length} epochs in ${(model.trainMs / 1000).toFixed(1)} s, train accuracy ${model.history.at(-1)!.accuracy}`);
    assert.ok(model.history.at(-1)!.accuracy > model.history[0].accuracy, JSON.stringify(model.history));
  });

  it('exports image [batch, 3, 32, 32] → logits [batch, 3] with Conv/Relu/MaxPool/Flatten/Gemm at opset 13', () => {
    const info = inspectOnnx(bytes);
    assert.equal(info.opset, 13);
    assert.deepEqual(info.inputs, [{ name: 'image', dtype: 'float32', shape: ['batch', 3, 32, 32] }]);
    assert.deepEqual(info.outputs, [{ name: 'logits', dtype: 'float32', shape: ['batch', 3] }]);
    assert.deepEqual([...info.opTypes].sort(), ['Conv', 'Flatten', 'Gemm', 'GlobalMaxPool', 'MaxPool', 'Relu']);
  });

  it('reaches ≥ 90 % held-out accuracy in onnxruntime-node', async (t) => {
    const r = await evaluateOnnx(bytes, { data: x, dims: dims() }, heldOut.labels);
    t.diagnostic(`held-out accuracy ${r.accuracy} on ${heldOut.n} images, onnx ${bytes.length} bytes, confusion ${JSON.stringify(r.confusion)}`);
    assert.ok(r.accuracy >= 0.9, `held-out accuracy ${r.accuracy}`);
  });

  it('ONNX logits equal the TS forward pass within 1e-3 (node and web runtimes)', async () => {
    const ts = model.forward(x);
    for (const runtime of ['node', 'web'] as const) {
      const c = await compareOnnxWithForward(bytes, { data: x, dims: dims() }, ts, { runtime, tolerance: 1e-3 });
      assert.ok(c.ok, `${runtime}: max diff ${c.maxAbsDiff}`);
      assert.equal(c.argmaxAgreement, 1);
    }
  });

  it('gives the same predictions in onnxruntime-web as in onnxruntime-node', async () => {
    const node = await evaluateOnnx(bytes, { data: x, dims: dims() }, heldOut.labels);
    const web = await evaluateOnnx(bytes, { data: x, dims: dims() }, heldOut.labels, { runtime: 'web' });
    assert.deepEqual(web.predictions, node.predictions);
  });

  it('the flatten head exports a graph that matches its TS forward too', async () => {
    const w = { ...randomWeights('flatten', 8), c1: 4, c2: 6 };
    const m = cnnFromWeights(w);
    const c = await compareOnnxWithForward(exportCnnOnnx(m), { data: x.subarray(0, 20 * 3072), dims: [20, 3, 32, 32] }, m.forward(x.subarray(0, 20 * 3072)), { tolerance: 1e-4 });
    assert.ok(c.ok, `max diff ${c.maxAbsDiff}`);
    assert.equal(cnnWeightsFromOnnx(exportCnnOnnx(m)).head, 'flatten');
  });

  it('is deterministic for a seed (short run)', () => {
    const small = sliceShapes(train, 0, 100);
    const a = exportCnnOnnx(trainCnn(small, { seed: 9, epochs: 1 }));
    const b = exportCnnOnnx(trainCnn(small, { seed: 9, epochs: 1 }));
    assert.deepEqual(a, b);
  });

  it('fine-tunes from weights read back from the ONNX and recovers from a brightness drift', async (t) => {
    const weights = cnnWeightsFromOnnx(bytes);
    const back = cnnFromWeights(weights);
    const some = x.subarray(0, 10 * 3072);
    const diff = Math.max(...Array.from(back.forward(some), (v, i) => Math.abs(v - model.forward(some)[i])));
    assert.ok(diff < 1e-4, `weights read back differ by ${diff}`);

    const brightTrain = await makeShapes({ n: 500, seed: 23, brightnessShift: 80 });
    const brightEval = await makeShapes({ n: 400, seed: 24, brightnessShift: 80 });
    const bx = { data: toNchw(brightEval.pixels, brightEval.n), dims: [brightEval.n, 3, 32, 32] };
    const before = await evaluateOnnx(bytes, bx, brightEval.labels);
    const tuned = trainCnn(brightTrain, { seed: 25, init: weights });
    const after = await evaluateOnnx(exportCnnOnnx(tuned), bx, brightEval.labels);
    t.diagnostic(`brightness +80: ${before.accuracy} before, ${after.accuracy} after fine-tuning (${(tuned.trainMs / 1000).toFixed(1)} s)`);
    assert.ok(after.accuracy >= 0.9, `fine-tuned accuracy on bright images ${after.accuracy}`);
    assert.ok(after.accuracy > before.accuracy, 'fine-tuning should help');
  });
});
