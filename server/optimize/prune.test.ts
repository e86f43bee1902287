import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { before, describe, it } from 'node:test';
import { encodeModel, floatTensor, node, valueInfo } from '../onnx/build.ts';
import { onnx } from '../onnx/onnx-proto.ts';
import { OptimizeError } from './errors.ts';
import { prune } from './prune.ts';
import { smallTabular } from './demo-fixtures.ts';
import { buildCnn, makeStripeImages, noWeightsModel, subgraphModel } from './test-fixtures.ts';

const demo = smallTabular({ testRows: 200 });
import { decode, initializerDims, maxAbs, maxAbsDiff, runNode, runWeb } from './test-helpers.ts';

const gz = (b: Uint8Array) => gzipSync(b, { level: 9 }).length;

function floats(bytes: Uint8Array): Map<string, Float32Array> {
  return new Map(decode(bytes).graph!.initializer!.map((t) => [t.name!, new Float32Array(Uint8Array.from(t.rawData!).buffer)]));
}

/** The original model with the given output channels of `weight` (axis 0) and their bias entries set to 0. */
function masked(bytes: Uint8Array, channels: Array<{ weight: string; bias: string; removed: number[] }>): Uint8Array {
  const m = decode(bytes);
  for (const { weight, bias, removed } of channels) {
    const w = m.graph!.initializer!.find((t) => t.name === weight)!;
    const b = m.graph!.initializer!.find((t) => t.name === bias)!;
    const wd = new Float32Array(Uint8Array.from(w.rawData!).buffer);
    const bd = new Float32Array(Uint8Array.from(b.rawData!).buffer);
    const per = wd.length / bd.length;
    for (const u of removed) {
      wd.fill(0, u * per, (u + 1) * per);
      bd[u] = 0;
    }
    w.rawData = new Uint8Array(wd.buffer);
    b.rawData = new Uint8Array(bd.buffer);
  }
  return onnx.ModelProto.encode(m).finish();
}

describe('prune: unstructured magnitude pruning', () => {
  let cnn: Uint8Array;
  let mlp: Uint8Array;
  let images: Float32Array;
  before(async () => {
    cnn = await buildCnn(makeStripeImages(400, 1));
    mlp = demo.bytes;
    images = makeStripeImages(20, 3).inputs;
  });

  it('CNN at 50 %: half of every weight is zero, the smallest |w| went, gzip size drops ≥ 30 %', async () => {
    const { bytes, report } = prune(cnn, { sparsity: 0.5, structured: false });
    assert.equal(report.weights.length, 3);
    assert.ok(Math.abs(report.sparsity - 0.5) < 0.01, `sparsity ${report.sparsity}`);
    const before = floats(cnn);
    const after = floats(bytes);
    for (const name of ['conv1.weight', 'conv2.weight', 'fc.weight']) {
      const w0 = before.get(name)!;
      const w1 = after.get(name)!;
      assert.equal(w1.length, w0.length, 'shapes stay');
      let zeroed = 0;
      let maxZeroed = 0;
      let minKept = Infinity;
      for (let i = 0; i < w0.length; i++) {
        if (w1[i] === 0) {
          zeroed++;
          maxZeroed = Math.max(maxZeroed, Math.abs(w0[i]));
        } else {
          assert.equal(w1[i], w0[i], 'kept weights are unchanged');
          minKept = Math.min(minKept, Math.abs(w0[i]));
        }
      }
      assert.equal(zeroed, Math.floor(w0.length / 2), name);
      assert.ok(maxZeroed <= minKept, `${name}: zeroed |w| up to ${maxZeroed}, kept from ${minKept}`);
    }
    assert.equal(bytes.length, cnn.length, 'raw size is unchanged');
    const drop = 1 - gz(bytes) / gz(cnn);
    assert.ok(drop >= 0.3, `gzip ${gz(cnn)} → ${gz(bytes)} (${(drop * 100).toFixed(1)} % drop)`);
    const [n, w] = await Promise.all([runNode(bytes, images, [3, 32, 32]), runWeb(bytes, images, [3, 32, 32])]);
    assert.ok(maxAbsDiff(n.data, w.data) <= 1e-3 * Math.max(1, maxAbs(n.data)));
  });

  it('MLP at 50 %: gzip saves nearly all of the zeroed float32 bytes (the 1.3 KB file is mostly structure)', () => {
    const { bytes, report } = prune(mlp, { sparsity: 0.5, structured: false });
    assert.deepEqual(report.weights.map((w) => [w.weight, w.zeros]), [['W1', 64], ['W2', 24]]);
    const zeroedBytes = (64 + 24) * 4;
    const saved = gz(mlp) - gz(bytes);
    assert.ok(saved >= 0.7 * zeroedBytes, `gzip saved ${saved} of ${zeroedBytes} zeroed bytes`);
    assert.ok(1 - gz(bytes) / gz(mlp) >= 0.2, `gzip drop ${(1 - gz(bytes) / gz(mlp)).toFixed(3)}`);
  });

  it('prunes weights inside subgraphs too', () => {
    const { report } = prune(subgraphModel(), { sparsity: 0.25, structured: false });
    assert.deepEqual(report.weights.map((w) => w.location).sort(), ['main', 'main/If_branch.else_branch', 'main/If_branch.then_branch']);
  });
});

describe('prune: structured (by output channel)', () => {
  let cnn: Uint8Array;
  let mlp: Uint8Array;
  let images: Float32Array;
  let rows: Float32Array;
  before(async () => {
    cnn = await buildCnn(makeStripeImages(400, 1));
    mlp = demo.bytes;
    images = makeStripeImages(20, 3).inputs;
    rows = demo.test.inputs;
  });

  it('MLP: removes hidden units from W1, B1 and the matching columns of W2; outputs equal the original with those units silenced', async () => {
    const { bytes, report } = prune(mlp, { sparsity: 0.5, structured: true });
    assert.equal(report.chains.length, 1);
    const [chain] = report.chains;
    assert.deepEqual([chain.channelsBefore, chain.channelsAfter, chain.through], [16, 8, ['Relu']]);
    const dims = initializerDims(bytes);
    assert.deepEqual(dims.get('W1'), [8, 8]);
    assert.deepEqual(dims.get('B1'), [8]);
    assert.deepEqual(dims.get('W2'), [3, 8]);
    assert.equal(report.prunedParams, 8 * 8 + 8 + 3 * 8);
    assert.ok(bytes.length < mlp.length - report.prunedParams * 4 + 16);
    const reference = masked(mlp, [{ weight: 'W1', bias: 'B1', removed: chain.removed }]);
    const [a, b, w] = await Promise.all([runNode(bytes, rows, [8]), runNode(reference, rows, [8]), runWeb(bytes, rows, [8])]);
    assert.ok(maxAbsDiff(a.data, b.data) < 1e-4, `vs masked original: ${maxAbsDiff(a.data, b.data)}`);
    assert.ok(maxAbsDiff(a.data, w.data) < 1e-4);
  });

  it('CNN: conv1 loses output channels and conv2 the matching inputs; conv2 loses channels and the Gemm their flattened blocks', async () => {
    const { bytes, report } = prune(cnn, { sparsity: 0.5, structured: true });
    assert.deepEqual(report.chains.map((c) => [c.through.join(','), c.channelsBefore, c.channelsAfter]), [
      ['Relu,MaxPool', 16, 8],
      ['Relu,MaxPool,Flatten', 32, 16],
    ]);
    const dims = initializerDims(bytes);
    assert.deepEqual(dims.get('conv1.weight'), [8, 3, 3, 3]);
    assert.deepEqual(dims.get('conv1.bias'), [8]);
    assert.deepEqual(dims.get('conv2.weight'), [16, 8, 3, 3]);
    assert.deepEqual(dims.get('conv2.bias'), [16]);
    assert.deepEqual(dims.get('fc.weight'), [3, 16 * 8 * 8]);
    assert.ok(bytes.length < cnn.length * 0.45, `${cnn.length} → ${bytes.length} bytes`);
    const reference = masked(cnn, [
      { weight: 'conv1.weight', bias: 'conv1.bias', removed: report.chains[0].removed },
      { weight: 'conv2.weight', bias: 'conv2.bias', removed: report.chains[1].removed },
    ]);
    const [a, b, w] = await Promise.all([runNode(bytes, images, [3, 32, 32]), runNode(reference, images, [3, 32, 32]), runWeb(bytes, images, [3, 32, 32])]);
    assert.ok(maxAbsDiff(a.data, b.data) < 1e-3, `vs masked original: ${maxAbsDiff(a.data, b.data)}`);
    assert.ok(maxAbsDiff(a.data, w.data) <= 1e-3 * Math.max(1, maxAbs(a.data)));
  });

  it('keeps conv channels in multiples of 8 by default (onnxruntime NCHWc blocks), exact shares on request', () => {
    const rounded = prune(cnn, { sparsity: 0.25, structured: true });
    assert.deepEqual(rounded.report.chains.map((c) => [c.channelsBefore, c.channelsAfter]), [[32, 24]]);
    assert.ok(rounded.report.skipped.some((s) => /multiples of 8/.test(s.reason)));
    const exact = prune(cnn, { sparsity: 0.25, structured: true, channelMultiple: 1 });
    assert.deepEqual(exact.report.chains.map((c) => [c.channelsBefore, c.channelsAfter]), [[16, 12], [32, 24]]);
  });

  it('slices per-channel constants in between (MatMul → Add(bias) → Relu → MatMul)', async () => {
    const model = encodeModel({
      opset: 13,
      inputs: [valueInfo('x', 'float32', ['batch', 4])],
      outputs: [valueInfo('y', 'float32', ['batch', 2])],
      initializers: [
        floatTensor('A', [4, 6], Array.from({ length: 24 }, (_, i) => Math.cos(i))),
        floatTensor('bias', [6], [0.1, -0.2, 0.3, 0, 0.5, -0.1]),
        floatTensor('B', [6, 2], Array.from({ length: 12 }, (_, i) => Math.sin(i))),
      ],
      nodes: [node('MatMul', ['x', 'A'], ['h']), node('Add', ['h', 'bias'], ['hb']), node('Relu', ['hb'], ['r']), node('MatMul', ['r', 'B'], ['y'])],
    });
    const { bytes, report } = prune(model, { sparsity: 0.5, structured: true });
    const dims = initializerDims(bytes);
    assert.deepEqual([dims.get('A'), dims.get('bias'), dims.get('B')], [[4, 3], [3], [3, 2]]);
    assert.deepEqual(report.chains[0].through, ['Add', 'Relu']);
    await runNode(bytes, Float32Array.from([1, 2, 3, 4]), [4]);
  });
});

describe('prune: refusals', () => {
  const refused = (fn: () => unknown, reason: string, match?: RegExp) =>
    assert.throws(fn, (err: unknown) => {
      assert.ok(err instanceof OptimizeError, String(err));
      assert.equal(err.reason, reason);
      if (match) assert.match(err.message, match);
      return true;
    });

  it('structured pruning needs a producer → consumer chain in the main graph', () => {
    const single = encodeModel({
      opset: 13,
      inputs: [valueInfo('x', 'float32', ['batch', 4])],
      outputs: [valueInfo('y', 'float32', ['batch', 3])],
      initializers: [floatTensor('W', [3, 4], Array.from({ length: 12 }, (_, i) => i))],
      nodes: [node('Gemm', ['x', 'W'], ['y'], { transB: 1 })],
    });
    refused(() => prune(single, { sparsity: 0.5, structured: true }), 'not_prunable', /graph output/);
    refused(() => prune(subgraphModel(), { sparsity: 0.5, structured: true }), 'not_prunable', /subgraph/);
    refused(() => prune(noWeightsModel(), { sparsity: 0.5, structured: false }), 'not_prunable');
  });

  it('a residual branch is not a simple chain', () => {
    const model = encodeModel({
      opset: 13,
      inputs: [valueInfo('x', 'float32', ['batch', 4])],
      outputs: [valueInfo('y', 'float32', ['batch', 4])],
      initializers: [floatTensor('A', [4, 4], Array.from({ length: 16 }, (_, i) => i / 16)), floatTensor('B', [4, 4], Array.from({ length: 16 }, (_, i) => -i / 16))],
      nodes: [node('MatMul', ['x', 'A'], ['h']), node('Add', ['h', 'x'], ['res']), node('MatMul', ['res', 'B'], ['y'])],
    });
    refused(() => prune(model, { sparsity: 0.5, structured: true }), 'not_prunable', /non-constant operand/);
  });

  it('rejects a sparsity outside (0, 1) and corrupted bytes', () => {
    const mlp = demo.bytes;
    refused(() => prune(mlp, { sparsity: 1, structured: false }), 'invalid_options');
    refused(() => prune(mlp, { sparsity: 0, structured: true }), 'invalid_options');
    refused(() => prune(mlp.subarray(0, 100), { sparsity: 0.5, structured: false }), 'corrupt_model');
  });
});
