import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { encodeModel, floatTensor, node, valueInfo } from '../onnx/build.ts';
import { ridgeSolve } from './calibrate.ts';
import { evaluateModel, evaluateVariant, type EvalDataset, type ModelEvaluation } from './evaluate.ts';
import { decodeModel, encodeModel as encode } from './graph.ts';
import { optimizeModel } from './index.ts';
import { prune } from './prune.ts';
import { pruneModelCalibrated } from './prune-calibrated.ts';
import type { CalibrationData } from './calibrate.ts';
import { smallTabular } from './demo-fixtures.ts';
import { buildCnn, makeStripeImages, randomRows, rng } from './test-fixtures.ts';
import { initializerDims, maxAbs, maxAbsDiff, opTypes, runNode, runWeb } from './test-helpers.ts';

const NO_TIMING = { latency: false, memory: false } as const;

async function calibrated(bytes: Uint8Array, opts: { sparsity: number; structured: boolean; channelMultiple?: number }, cal: { inputs: Float32Array; sampleShape: number[] }) {
  const model = decodeModel(bytes);
  const report = await pruneModelCalibrated(model, opts, { ...cal, maxSamples: 256 });
  return { bytes: encode(model), report };
}

describe('ridgeSolve', () => {
  it('recovers the coefficients of an exactly linear problem', () => {
    // y = 2·a − 3·b + 0.5 over a few rows; G = XᵀX, R = Xᵀy with an intercept column.
    const rows = [[1, 0], [0, 1], [1, 1], [2, -1], [0.5, 3]];
    const k = 3;
    const G = new Float64Array(k * k);
    const R = new Float64Array(k);
    for (const [a, b] of rows) {
      const x = [a, b, 1];
      const y = 2 * a - 3 * b + 0.5;
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) G[i * k + j] += x[i] * x[j];
        R[i] += x[i] * y;
      }
    }
    const B = ridgeSolve(G, R, k, 1, 1e-12)!;
    assert.deepEqual(Array.from(B, (v) => Number(v.toFixed(6))), [2, -3, 0.5]);
  });
});

describe('calibrated pruning on the MLP', () => {
  let mlp: Uint8Array;
  let train: CalibrationData;
  let test: EvalDataset;
  let parent: ModelEvaluation;
  before(async () => {
    ({ bytes: mlp, test, calibration: train } = smallTabular());
    parent = await evaluateModel(mlp, test, NO_TIMING);
  });

  it('structured 50 %: same shapes as magnitude pruning, far closer to the parent (refit of W2 on kept units)', async () => {
    const magnitude = prune(mlp, { sparsity: 0.5, structured: true });
    const cal = await calibrated(mlp, { sparsity: 0.5, structured: true }, train);
    assert.equal(cal.report.method, 'calibrated');
    assert.deepEqual(initializerDims(cal.bytes), initializerDims(magnitude.bytes));
    const evM = await evaluateVariant(magnitude.bytes, parent, test, NO_TIMING);
    const evC = await evaluateVariant(cal.bytes, parent, test, NO_TIMING);
    assert.ok(evC.agreement >= evM.agreement + 0.1, `agreement: magnitude ${evM.agreement}, calibrated ${evC.agreement}`);
    assert.ok(evC.accuracyDrop! < evM.accuracyDrop! / 4, `accuracy drop: magnitude ${evM.accuracyDrop}, calibrated ${evC.accuracyDrop}`);
    const x = test.inputs.subarray(0, 100 * 8);
    const [n, w] = await Promise.all([runNode(cal.bytes, x, [8]), runWeb(cal.bytes, x, [8])]);
    assert.ok(maxAbsDiff(n.data, w.data) < 1e-4 * Math.max(1, maxAbs(n.data)));
  });

  it('unstructured 50 %: every output keeps exactly half of its weights, and agreement beats magnitude pruning', async () => {
    const magnitude = prune(mlp, { sparsity: 0.5, structured: false });
    const cal = await calibrated(mlp, { sparsity: 0.5, structured: false }, train);
    const w1 = new Float32Array(Uint8Array.from(decodeModel(cal.bytes).graph!.initializer!.find((t) => t.name === 'W1')!.rawData!).buffer);
    for (let o = 0; o < 16; o++) assert.equal(w1.subarray(o * 8, o * 8 + 8).filter((v) => v === 0).length, 4, `row ${o}`);
    const evM = await evaluateVariant(magnitude.bytes, parent, test, NO_TIMING);
    const evC = await evaluateVariant(cal.bytes, parent, test, NO_TIMING);
    assert.ok(evC.agreement > evM.agreement + 0.02, `agreement: magnitude ${evM.agreement}, calibrated ${evC.agreement}`);
  });

  it('is what optimizeModel does when given calibration samples, and says so in the metadata', async () => {
    const { report } = await optimizeModel(mlp, { prune: { sparsity: 0.25, structured: true }, calibration: { inputs: train.inputs, sampleShape: [8], maxSamples: 256 } });
    assert.equal(report.pruning?.method, 'calibrated');
  });
});

describe('calibrated pruning: exactness and graph edits', () => {
  it('structured: when removed units duplicate kept ones, the refit reproduces the original outputs', async () => {
    // Units 8…15 are copies of 0…7 at half scale (Relu is positively homogeneous: h[u+8] = h[u] / 2)
    // with small outgoing weights, so they score lowest and their contribution is a linear function of kept units.
    const r = rng(11);
    const a = Array.from({ length: 8 * 4 }, () => r.normal());
    const b1 = Array.from({ length: 8 }, () => 0.1 * r.normal());
    const w1 = [...a, ...a.map((v) => v / 2)];
    const bias1 = [...b1, ...b1.map((v) => v / 2)];
    const w2 = Array.from({ length: 3 * 16 }, (_, i) => (i % 16 < 8 ? r.normal() : 0.3 * r.normal()));
    const model = encodeModel({
      opset: 13,
      inputs: [valueInfo('x', 'float32', ['batch', 4])],
      outputs: [valueInfo('y', 'float32', ['batch', 3])],
      initializers: [floatTensor('W1', [16, 4], w1), floatTensor('B1', [16], bias1), floatTensor('W2', [3, 16], w2), floatTensor('B2', [3], [0.1, 0.2, 0.3])],
      nodes: [node('Gemm', ['x', 'W1', 'B1'], ['h'], { transB: 1 }), node('Relu', ['h'], ['r']), node('Gemm', ['r', 'W2', 'B2'], ['y'], { transB: 1 })],
    });
    const x = randomRows(400, 4, 3);
    const { bytes, report } = await calibrated(model, { sparsity: 0.5, structured: true }, { inputs: x, sampleShape: [4] });
    assert.deepEqual(report.chains[0].removed, [8, 9, 10, 11, 12, 13, 14, 15]);
    const probe = randomRows(50, 4, 4);
    const [orig, pruned, magnitude] = await Promise.all([runNode(model, probe, [4]), runNode(bytes, probe, [4]), runNode(prune(model, { sparsity: 0.5, structured: true }).bytes, probe, [4])]);
    assert.ok(maxAbsDiff(orig.data, pruned.data) < 1e-3 * maxAbs(orig.data), `refit error ${maxAbsDiff(orig.data, pruned.data)}`);
    assert.ok(maxAbsDiff(orig.data, magnitude.data) > 0.05 * maxAbs(orig.data), 'without the refit the removed units are missed');
  });

  it('unstructured on a MatMul without bias: the correction adds an Add after it', async () => {
    const model = encodeModel({
      opset: 13,
      inputs: [valueInfo('x', 'float32', ['batch', 6])],
      outputs: [valueInfo('y', 'float32', ['batch', 4])],
      initializers: [floatTensor('A', [6, 5], Array.from({ length: 30 }, (_, i) => Math.sin(i + 1))), floatTensor('B', [5, 4], Array.from({ length: 20 }, (_, i) => Math.cos(i)))],
      nodes: [node('MatMul', ['x', 'A'], ['h']), node('Relu', ['h'], ['r']), node('MatMul', ['r', 'B'], ['y'])],
    });
    const x = Float32Array.from(randomRows(300, 6, 8), (v) => v + 1); // non-zero mean, so there is a shift to correct
    const { bytes } = await calibrated(model, { sparsity: 0.5, structured: false }, { inputs: x, sampleShape: [6] });
    assert.deepEqual(opTypes(bytes), ['MatMul', 'Add', 'Relu', 'MatMul', 'Add']);
    await runNode(bytes, x.subarray(0, 60), [6]);
  });

  it('CNN: the conv consumer is refitted on im2col patches; node and web agree', async () => {
    const images = makeStripeImages(300, 1);
    const cnn = await buildCnn(images);
    const test = makeStripeImages(150, 2);
    const parent = await evaluateModel(cnn, test, NO_TIMING);
    // channelMultiple 1: exact 25 % of each conv (12/24 channels), so both chains, conv → conv and conv → Gemm, are refitted.
    const cal = await calibrated(cnn, { sparsity: 0.25, structured: true, channelMultiple: 1 }, makeStripeImages(256, 3));
    assert.deepEqual(cal.report.chains.map((c) => c.channelsAfter), [12, 24]);
    const mag = prune(cnn, { sparsity: 0.25, structured: true, channelMultiple: 1 });
    const [evC, evM] = [await evaluateVariant(cal.bytes, parent, test, NO_TIMING), await evaluateVariant(mag.bytes, parent, test, NO_TIMING)];
    assert.ok(evC.agreement > evM.agreement + 0.1, `agreement: magnitude ${evM.agreement}, calibrated ${evC.agreement}`);
    const x = test.inputs.subarray(0, 10 * 3 * 32 * 32);
    const [n, w] = await Promise.all([runNode(cal.bytes, x, [3, 32, 32]), runWeb(cal.bytes, x, [3, 32, 32])]);
    assert.ok(maxAbsDiff(n.data, w.data) <= 1e-3 * Math.max(1, maxAbs(n.data)));
  });
});
