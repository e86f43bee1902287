import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { before, describe, it } from 'node:test';
import { encodeModel, floatTensor, node, valueInfo } from '../onnx/build.ts';
import { ServiceError } from '../errors.ts';
import { OptimizeError, checkQualityBudget, evaluateModel, evaluateVariant, optimizeModel, type OptimizeOptions } from './index.ts';
import { smallTabular, type DemoModel } from './demo-fixtures.ts';
import { buildCnn, makeStripeImages } from './test-fixtures.ts';
import { decode, maxAbs, maxAbsDiff, runNode, runWeb } from './test-helpers.ts';

const gz = (b: Uint8Array) => gzipSync(b, { level: 9 }).length;

describe('optimizeModel', () => {
  let mlp: Uint8Array;
  let tabular: DemoModel;
  let cnn: Uint8Array;
  before(async () => {
    tabular = smallTabular({ testRows: 600 });
    mlp = tabular.bytes;
    cnn = await buildCnn(makeStripeImages(400, 1));
  });

  const cases: Array<[string, OptimizeOptions]> = [
    ['int8 qdq', { quantize: { form: 'qdq', perChannel: false } }],
    ['int8 integer per-channel', { quantize: { form: 'integer', perChannel: true } }],
    ['pruned 50 %', { prune: { sparsity: 0.5, structured: false } }],
    ['structured 25 % + int8 qdq per-channel', { prune: { sparsity: 0.25, structured: true }, quantize: { form: 'qdq', perChannel: true } }],
    ['pruned 50 % + int8 integer', { prune: { sparsity: 0.5, structured: false }, quantize: { form: 'integer', perChannel: false } }],
  ];
  for (const [name, opts] of cases) {
    it(`${name}: report, metadata, and the same outputs in onnxruntime-node and -web (both models)`, async () => {
      for (const [model, x, shape] of [
        [mlp, tabular.test.inputs.subarray(0, 64 * 8), [8]],
        [cnn, makeStripeImages(16, 5).inputs, [3, 32, 32]],
      ] as const) {
        const { bytes, report } = await optimizeModel(model, opts);
        assert.equal(report.form, opts.quantize?.form ?? 'fp32');
        assert.equal(report.perChannel, opts.quantize ? opts.quantize.perChannel : null);
        assert.equal(report.structured, opts.prune ? opts.prune.structured : null);
        assert.equal(report.sizeBefore, model.length);
        assert.equal(report.sizeAfter, bytes.length);
        if (opts.quantize) assert.ok(report.quantizedParamShare > 0.8, `share ${report.quantizedParamShare}`);
        else assert.equal(report.quantizedParamShare, 0);
        if (opts.prune) assert.ok(Math.abs(report.sparsity - opts.prune.sparsity) < 0.1, `sparsity ${report.sparsity}`);
        const meta = decode(bytes).metadataProps!.find((p) => p.key === 'flotilla.optimize');
        assert.deepEqual(JSON.parse(meta!.value!), { ...(opts.quantize ? { quantize: { form: opts.quantize.form, perChannel: opts.quantize.perChannel } } : {}), ...(opts.prune ? { prune: { ...opts.prune, method: 'magnitude' } } : {}) });
        const [n, w] = await Promise.all([runNode(bytes, x, [...shape]), runWeb(bytes, x, [...shape])]);
        assert.ok(maxAbsDiff(n.data, w.data) <= 1e-3 * Math.max(1, maxAbs(n.data)), `${name}: node vs web ${maxAbsDiff(n.data, w.data)}`);
      }
    });
  }

  it('pruning before int8 compresses further than int8 alone', async () => {
    const q = await optimizeModel(cnn, { quantize: { form: 'qdq', perChannel: true } });
    const pq = await optimizeModel(cnn, { prune: { sparsity: 0.5, structured: false }, quantize: { form: 'qdq', perChannel: true } });
    assert.ok(gz(pq.bytes) < 0.8 * gz(q.bytes), `${gz(q.bytes)} vs ${gz(pq.bytes)}`);
  });

  it('the int8 MLP variant is accepted by the quality budget on held-out data', async () => {
    const test = tabular.test;
    const parent = await evaluateModel(mlp, test, { latency: false, memory: false });
    const { bytes } = await optimizeModel(mlp, { quantize: { form: 'qdq', perChannel: true } });
    const verdict = checkQualityBudget(await evaluateVariant(bytes, parent, test, { latency: false, memory: false }));
    assert.deepEqual(verdict, { accepted: true, reasons: [] });
  });

  it('refuses with a typed 422 error: nothing to do, corrupt bytes, a model onnxruntime cannot load', async () => {
    const check = (reason: string) => (e: unknown) => {
      assert.ok(e instanceof OptimizeError && e instanceof ServiceError, String(e));
      assert.equal(e.reason, reason);
      assert.equal(e.code, 'invalid_model');
      assert.equal(e.status, 422);
      assert.equal((e.details as { reason: string }).reason, reason);
      return true;
    };
    await assert.rejects(optimizeModel(mlp, {}), check('invalid_options'));
    await assert.rejects(optimizeModel(mlp.subarray(7), { quantize: { form: 'qdq', perChannel: false } }), check('corrupt_model'));
    // Protobuf-valid, but the weight does not fit the input: onnxruntime refuses to load it.
    const broken = encodeModel({
      opset: 13,
      inputs: [valueInfo('x', 'float32', ['batch', 8])],
      outputs: [valueInfo('y', 'float32', ['batch', 3])],
      initializers: [floatTensor('W', [5, 3], new Array(15).fill(0.1))],
      nodes: [node('MatMul', ['x', 'W'], ['y'])],
    });
    await assert.rejects(optimizeModel(broken, { quantize: { form: 'qdq', perChannel: false } }), check('corrupt_model'));
  });
});
