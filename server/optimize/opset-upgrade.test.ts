// Old exports: an opset-9 CNN (Conv, BatchNormalization, Relu, MaxPool, Dropout with a ratio, Flatten,
// Gemm, Softmax) is lifted to the opset each quantization form needs, computes what it computed, and
// quantizes; a graph holding an op without a rule is refused naming the op.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { encodeModel, floatTensor, node, valueInfo } from '../onnx/build.ts';
import { decodeModel, encodeModel as encodeDecoded, opsetOf } from './graph.ts';
import { optimizeModel, OptimizeError } from './index.ts';
import { upgradeOpset } from './opset-upgrade.ts';

const w = (n: number, seed: number, scale = 0.3) => Array.from({ length: n }, (_, i) => Math.sin((i + 1) * 7.31 * seed) * scale);

/** An opset-9 CNN as old exporters wrote it: image [batch, 3, 16, 16] → probabilities [batch, 4]. */
export function opset9Cnn(extra: 'none' | 'upsample' = 'none'): Uint8Array {
  const nodes = [
    node('Conv', ['image', 'W1', 'B1'], ['c1'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
    node('BatchNormalization', ['c1', 'g', 'b', 'm', 'v'], ['bn'], { epsilon: 1e-5 }),
    node('Relu', ['bn'], ['r1']),
    node('MaxPool', ['r1'], ['p1'], { kernel_shape: [2, 2], strides: [2, 2] }),
    node('Dropout', ['p1'], ['d1'], { ratio: 0.25 }),
    node('Flatten', ['d1'], ['f1'], { axis: 1 }),
    node('Gemm', ['f1', 'W2', 'B2'], ['logits'], { transB: 1 }),
    node('Softmax', ['logits'], ['probs'], { axis: 1 }),
  ];
  if (extra === 'upsample') nodes.splice(4, 0, node('Upsample', ['p1', 'scales'], ['u1'], { mode: 'nearest' }));
  return encodeModel({
    opset: 9,
    inputs: [valueInfo('image', 'float32', ['batch', 3, 16, 16])],
    outputs: [valueInfo('probs', 'float32', ['batch', 4])],
    initializers: [
      floatTensor('W1', [8, 3, 3, 3], w(216, 1)),
      floatTensor('B1', [8], w(8, 2, 0.1)),
      floatTensor('g', [8], w(8, 3, 0.2).map((x) => 1 + x)),
      floatTensor('b', [8], w(8, 4, 0.1)),
      floatTensor('m', [8], w(8, 5, 0.1)),
      floatTensor('v', [8], w(8, 6, 0.2).map((x) => 1 + Math.abs(x))),
      floatTensor('W2', [4, 8 * 8 * 8], w(4 * 512, 7, 0.05)),
      floatTensor('B2', [4], [0.1, -0.1, 0.2, 0]),
      ...(extra === 'upsample' ? [floatTensor('scales', [4], [1, 1, 1, 1])] : []),
    ],
    nodes,
  });
}

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
