// Old exports: an opset-9 CNN (Conv, BatchNormalization, Relu, MaxPool, Dropout with a ratio, Flatten,
// Gemm, Softmax) is lifted to the opset each quantization form needs, computes what it computed, and
// quantizes; a graph holding an op without a rule is refused naming the op.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { opset9Cnn } from '../../test/helpers/odd-models.ts';
import { decodeModel, encodeModel as encodeDecoded, opsetOf } from './graph.ts';
import { optimizeModel, OptimizeError } from './index.ts';
import { upgradeOpset } from './opset-upgrade.ts';

const input = new ort.Tensor('float32', Float32Array.from({ length: 2 * 3 * 16 * 16 }, (_, i) => Math.cos(i * 0.37)), [2, 3, 16, 16]);
async function run(bytes: Uint8Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes);
  const out = await s.run({ image: input });
  await s.release();
  return out.probs.data as Float32Array;
}

test('an opset-9 CNN lifted to 13 computes exactly what it did', async () => {
  const model = decodeModel(opset9Cnn());
  const r = upgradeOpset(model, 13);
  assert.equal(r.from, 9);
  assert.equal(opsetOf(model), 13);
  assert.ok(r.rewrites.some((l) => /Dropout.*ratio/.test(l)), r.rewrites.join('\n'));
  assert.ok(r.rewrites.some((l) => /Softmax.*Flatten/.test(l)), r.rewrites.join('\n'));
  const before = await run(opset9Cnn());
  const after = await run(encodeDecoded(model));
  after.forEach((v, i) => assert.ok(Math.abs(v - before[i]) < 1e-6, `${i}: ${v} vs ${before[i]}`));
});

test('every quantization form upgrades the opset it needs and records it in the report', async () => {
  const before = await run(opset9Cnn());
  for (const [q, need] of [[{ form: 'qdq', perChannel: false }, 10], [{ form: 'qdq', perChannel: true }, 13], [{ form: 'integer', perChannel: false }, 11]] as const) {
    const { bytes, report } = await optimizeModel(opset9Cnn(), { quantize: q });
    assert.deepEqual([report.opsetUpgrade?.from, report.opsetUpgrade?.to, report.opset], [9, need, need]);
    assert.ok(report.quantizedParamShare > 0.9);
    const after = await run(bytes);
    after.forEach((v, i) => assert.ok(Math.abs(v - before[i]) < 0.05, `${q.form}${q.perChannel ? ' per-channel' : ''} ${i}: ${v} vs ${before[i]}`));
  }
  // Pruning alone needs no upgrade.
  assert.equal((await optimizeModel(opset9Cnn(), { prune: { sparsity: 0.5, structured: false } })).report.opsetUpgrade, undefined);
});

test('a graph with an op that has no upgrade rule is refused, naming the op', async () => {
  await assert.rejects(optimizeModel(opset9Cnn('upsample'), { quantize: { form: 'qdq', perChannel: false } }), (e: unknown) => e instanceof OptimizeError && e.reason === 'unsupported_opset' && /Upsample/.test(e.message));
});
