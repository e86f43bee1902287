import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { encodeModel, floatTensor, node, valueInfo } from '../onnx/build.ts';
import { checkQualityBudget, evaluateModel, evaluateVariant, type EvalDataset, type VariantEvaluation } from './evaluate.ts';
import { prune } from './prune.ts';
import { quantize } from './quantize.ts';
import { smallTabular } from './demo-fixtures.ts';
import { randomRows } from './test-fixtures.ts';

/** Raw outputs computed here, one sample at a time, with a plain session (nothing from evaluate.ts). */
async function rawOutputs(bytes: Uint8Array, x: Float32Array, width: number): Promise<Float32Array[]> {
  const s = await ort.InferenceSession.create(bytes);
  const out: Float32Array[] = [];
  for (let i = 0; i < x.length / width; i++) {
    const r = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', x.slice(i * width, (i + 1) * width), [1, width]) });
    out.push(Float32Array.from(r[s.outputNames[0]].data as Float32Array));
  }
  await s.release();
  return out;
}

const argmax = (row: Float32Array) => row.indexOf(Math.max(...row));

describe('evaluate: numbers match an independent recomputation', () => {
  let mlp: Uint8Array;
  let test: EvalDataset & { labels: Int32Array };
  before(() => {
    ({ bytes: mlp, test } = smallTabular({ testRows: 400 }));
  });

  for (const form of ['qdq', 'integer'] as const) {
    it(`classifier, ${form} variant: accuracy, macro F1, agreement, sizes, latency and memory`, async () => {
      const variant = quantize(mlp, { form, perChannel: true }).bytes;
      const ev = await evaluateVariant(variant, mlp, test, { latency: { warmup: 5, maxIterations: 100, maxMs: 200 } });

      const [po, vo] = [await rawOutputs(mlp, test.inputs, 8), await rawOutputs(variant, test.inputs, 8)];
      const pp = po.map(argmax);
      const vp = vo.map(argmax);
      const acc = (p: number[]) => p.filter((c, i) => c === test.labels[i]).length / p.length;
      const f1 = (p: number[]) => {
        let sum = 0;
        for (let c = 0; c < 3; c++) {
          const tp = p.filter((v, i) => v === c && test.labels[i] === c).length;
          const fp = p.filter((v, i) => v === c && test.labels[i] !== c).length;
          const fn = p.filter((v, i) => v !== c && test.labels[i] === c).length;
          sum += tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
        }
        return sum / 3;
      };
      assert.equal(ev.parent.n, 400);
      assert.equal(ev.parent.accuracy, acc(pp));
      assert.equal(ev.variant.accuracy, acc(vp));
      assert.ok(Math.abs(ev.parent.f1Macro! - f1(pp)) < 1e-12);
      assert.ok(Math.abs(ev.variant.f1Macro! - f1(vp)) < 1e-12);
      assert.equal(ev.accuracyDrop, acc(pp) - acc(vp));
      assert.equal(ev.agreement, pp.filter((c, i) => c === vp[i]).length / pp.length);
      let maxDiff = 0;
      po.forEach((row, i) => row.forEach((v, c) => (maxDiff = Math.max(maxDiff, Math.abs(v - vo[i][c])))));
      // The plain session here does not fold the qdq weights: float rounding differs by ~1e-6.
      assert.ok(Math.abs(ev.maxAbsOutputDiff - maxDiff) < 1e-4, `${ev.maxAbsOutputDiff} vs ${maxDiff}`);

      assert.equal(ev.parent.sizeBytes, mlp.length);
      assert.equal(ev.variant.sizeBytes, variant.length);
      assert.equal(ev.variant.gzipBytes, gzipSync(variant, { level: 9 }).length);
      assert.equal(ev.sizeRatio, mlp.length / variant.length);

      const lat = ev.variant.latency!;
      assert.ok(lat.iterations >= 20 && lat.iterations <= 100);
      assert.ok(lat.p50Ms > 0 && lat.p50Ms <= lat.p95Ms, JSON.stringify(lat));
      const mem = ev.variant.memory!;
      assert.ok(mem, 'peak memory measured');
      assert.ok(mem.peakRssBytes > mem.baselineRssBytes && mem.rssDeltaBytes > 0, JSON.stringify(mem));
    });
  }

  it('regressor: RMSE and tolerance-based agreement', async () => {
    const w = [0.5, -1, 2, 0.25];
    const model = encodeModel({
      opset: 13,
      inputs: [valueInfo('x', 'float32', ['batch', 4])],
      outputs: [valueInfo('y', 'float32', ['batch', 1])],
      initializers: [floatTensor('W', [4, 1], w), floatTensor('b', [1], [0.3])],
      nodes: [node('Gemm', ['x', 'W', 'b'], ['y'])],
    });
    const variant = encodeModel({
      opset: 13,
      inputs: [valueInfo('x', 'float32', ['batch', 4])],
      outputs: [valueInfo('y', 'float32', ['batch', 1])],
      initializers: [floatTensor('W', [4, 1], w), floatTensor('b', [1], [0.3 + 0.5])],
      nodes: [node('Gemm', ['x', 'W', 'b'], ['y'])],
    });
    const x = randomRows(50, 4, 3);
    // Noise ±0.3: the parent's RMSE is well above 5 % of the targets' spread, so the relative rule gates.
    const targets = Array.from({ length: 50 }, (_, i) => w.reduce((s, wj, j) => s + wj * x[i * 4 + j], 0.3) + (i % 2 ? 0.3 : -0.3));
    const ds: EvalDataset = { task: 'regression', inputs: x, sampleShape: [4], labels: targets };
    const ev = await evaluateVariant(variant, model, ds, { latency: false, memory: false, regressionTolerance: { abs: 0.6, rel: 0 } });
    const po = (await rawOutputs(model, x, 4)).map((r) => r[0]);
    const vo = (await rawOutputs(variant, x, 4)).map((r) => r[0]);
    const rmse = (p: number[]) => Math.sqrt(p.reduce((s, v, i) => s + (v - targets[i]) ** 2, 0) / p.length);
    assert.ok(Math.abs(ev.parent.rmse! - rmse(po)) < 1e-6);
    assert.ok(Math.abs(ev.variant.rmse! - rmse(vo)) < 1e-6);
    assert.equal(ev.agreement, 1, 'every prediction is within 0.6 of the parent');
    const strict = await evaluateVariant(variant, model, ds, { latency: false, memory: false, regressionTolerance: { abs: 0.1, rel: 0 } });
    assert.equal(strict.agreement, 0);
    const verdict = checkQualityBudget(strict);
    assert.equal(verdict.accepted, false);
    assert.ok(verdict.reasons.some((r) => r.startsWith('RMSE up')));
  });

  // y = x·k (+ c): a parent and variants with known errors on hand-picked values.
  const affine = (k: number, c: number, width: number) =>
    encodeModel({
      opset: 13,
      inputs: [valueInfo('x', 'float32', ['batch', width])],
      outputs: [valueInfo('y', 'float32', ['batch', width])],
      initializers: [floatTensor('k', [1], [k]), floatTensor('c', [1], [c])],
      nodes: [node('Mul', ['x', 'k'], ['xk']), node('Add', ['xk', 'c'], ['y'])],
    });
  // mean -0.0125, population standard deviation sqrt(10.015/8 − 0.0125²) = 1.118813…
  const xs = [-2, -1, -0.1, -0.05, 0, 0.05, 1, 2];
  const noCost = { latency: false, memory: false } as const;

  it('regression agreement is relative to each output element\'s spread, not to each value: values near zero agree', async () => {
    const ds: EvalDataset = { task: 'regression', inputs: Float32Array.from(xs), sampleShape: [1] };
    // +0.01 everywhere: 0.01 ≤ 5 % × 1.1188 for all 8 samples. (Relative to each value — 1e-3 + 5 % of
    // |parent| — the four values with |x| < 0.18 disagreed: 50 %.)
    assert.equal((await evaluateVariant(affine(1, 0.01, 1), affine(1, 0, 1), ds, noCost)).agreement, 1);
    // ×1.05: |Δ| = 0.05·|x| ≤ 0.05 × 1.1188 exactly for |x| ≤ 1.1188: 6 of 8 (±2 disagree).
    assert.equal((await evaluateVariant(affine(1.05, 0, 1), affine(1, 0, 1), ds, noCost)).agreement, 6 / 8);
    // +0.1 > 0.0559: none.
    assert.equal((await evaluateVariant(affine(1, 0.1, 1), affine(1, 0, 1), ds, noCost)).agreement, 0);
    // Two output elements 1000× apart: each is judged on its own spread, so the large one does not
    // make the small one's errors look negligible (one scale for both: 8 of 8 would agree on column 0).
    const two: EvalDataset = { task: 'regression', inputs: Float32Array.from(xs.flatMap((x) => [x, 1000 * x])), sampleShape: [2] };
    assert.equal((await evaluateVariant(affine(1.05, 0, 2), affine(1, 0, 2), two, noCost)).agreement, 6 / 8);
  });

  it('a parent with RMSE 0: the RMSE budget is 5 % of the targets\' standard deviation, with a reason that says so', async () => {
    const ds: EvalDataset = { task: 'regression', inputs: Float32Array.from(xs), sampleShape: [1], labels: Array.from(Float32Array.from(xs)) };
    const close = await evaluateVariant(affine(1, 0.01, 1), affine(1, 0, 1), ds, noCost);
    assert.equal(close.parent.rmse, 0);
    assert.equal(close.rmseIncrease, undefined, 'no relative increase over 0');
    assert.ok(Math.abs(close.targetStd! - Math.sqrt(10.015 / 8 - 0.0125 ** 2)) < 1e-7, String(close.targetStd));
    assert.ok(Math.abs(close.variant.rmse! - 0.01) < 1e-6);
    // Before: "RMSE up Infinity %" rejected every variant of an exact parent.
    assert.deepEqual(checkQualityBudget(close), { accepted: true, reasons: [] });
    const far = await evaluateVariant(affine(1, 0.1, 1), affine(1, 0, 1), ds, noCost);
    assert.deepEqual(checkQualityBudget(far, { minAgreement: 0 }), {
      accepted: false,
      reasons: [`RMSE 0.1000 > 0.05594 allowed: the parent's RMSE (0.000) is near zero, so the budget is 5.00 % of the targets' standard deviation (1.119), larger than 5.00 % more than the parent's`],
    });
    assert.equal(checkQualityBudget(far, { minAgreement: 0, maxRmseIncrease: 0.1 }).accepted, true, '0.1 ≤ 10 % × 1.1188');
    // A parent that is merely good keeps the relative rule: RMSE 0.5 (> 5 % of the spread), variant 0.6.
    const off = (d: number): EvalDataset => ({ ...ds, labels: xs.map((x) => x + d) });
    const rel = await evaluateVariant(affine(1, 0.1, 1), affine(1, 0, 1), off(0.5), noCost);
    assert.deepEqual(checkQualityBudget(rel, { minAgreement: 0 }).reasons, [], 'variant 0.4 < parent 0.5');
    const worse = await evaluateVariant(affine(1, 0.1, 1), affine(1, 0, 1), off(-0.5), noCost);
    assert.deepEqual(checkQualityBudget(worse, { minAgreement: 0 }).reasons, ['RMSE up 20.00 % > 5.00 % (parent 0.5000, variant 0.6000)']);
    // Exact parent, constant targets: nothing to scale an allowance by.
    const flat: EvalDataset = { task: 'regression', inputs: new Float32Array(4), sampleShape: [1], labels: [0, 0, 0, 0] };
    assert.deepEqual(checkQualityBudget(await evaluateVariant(affine(1, 0.01, 1), affine(1, 0, 1), flat, noCost), { minAgreement: 0 }).reasons, [
      'RMSE 0.01000 > 0 allowed: the parent is exact and the targets do not vary, so there is no scale to allow an error against',
    ]);
  });

  it('a model with a fixed batch of 1 is evaluated sample by sample', async () => {
    const model = encodeModel({
      opset: 13,
      inputs: [valueInfo('x', 'float32', [1, 3])],
      outputs: [valueInfo('y', 'float32', [1, 2])],
      initializers: [floatTensor('W', [3, 2], [1, 0, 0, 1, 1, -1])],
      nodes: [node('MatMul', ['x', 'W'], ['y'])],
    });
    const ds: EvalDataset = { task: 'classification', inputs: Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 5]), sampleShape: [3], labels: [0, 1, 0] };
    const m = await evaluateModel(model, ds, { latency: false, memory: false, batchSize: 64 });
    assert.deepEqual(Array.from(m.predictions!), [0, 1, 0]);
    assert.equal(m.metrics.accuracy, 1);
  });
});

describe('evaluate: quality budget', () => {
  const base = (over: Partial<VariantEvaluation>): VariantEvaluation => ({
    parent: { n: 100, task: 'classification', accuracy: 0.9, sizeBytes: 4, gzipBytes: 4, loadMs: 1 },
    variant: { n: 100, task: 'classification', accuracy: 0.9, sizeBytes: 1, gzipBytes: 1, loadMs: 1 },
    agreement: 1,
    accuracyDrop: 0,
    maxAbsOutputDiff: 0,
    sizeRatio: 4,
    gzipRatio: 4,
    ...over,
  });

  it('accepts exactly at the defaults (drop 1 point, agreement 98 %) and rejects past them, with reasons', () => {
    assert.deepEqual(checkQualityBudget(base({ accuracyDrop: 0.01, agreement: 0.98 })), { accepted: true, reasons: [] });
    const v = checkQualityBudget(base({ accuracyDrop: 0.011, agreement: 0.979, variant: { ...base({}).variant, accuracy: 0.889 } }));
    assert.equal(v.accepted, false);
    assert.equal(v.reasons.length, 2);
    assert.match(v.reasons[0], /accuracy drop 1.10 points > 1.00/);
    assert.match(v.reasons[1], /agreement with parent 97.90 % < 98.00 %/);
    assert.equal(checkQualityBudget(base({ accuracyDrop: 0.03 }), { maxAccuracyDrop: 0.05 }).accepted, true);
    assert.equal(checkQualityBudget(base({ agreement: NaN })).accepted, false);
  });

  it('a 50 % structured-pruned MLP without fine-tuning is rejected with its numbers', async () => {
    const { bytes: mlp, test } = smallTabular({ testRows: 400 });
    const pruned = prune(mlp, { sparsity: 0.5, structured: true }).bytes;
    const ev = await evaluateVariant(pruned, mlp, test, { latency: false, memory: false });
    const v = checkQualityBudget(ev);
    assert.equal(v.accepted, false, `drop ${ev.accuracyDrop}, agreement ${ev.agreement}`);
    assert.ok(v.reasons.some((r) => r.startsWith('agreement with parent')));
  });
});
