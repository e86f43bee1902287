import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { encodeModel, floatTensor, node, valueInfo } from '../onnx/build.ts';
import { onnx, type GraphProto } from '../onnx/onnx-proto.ts';
import { OptimizeError } from './errors.ts';
import { checkQualityBudget, evaluateModel, evaluateVariant, type EvalDataset, type ModelEvaluation } from './evaluate.ts';
import { QDQ_SESSION_OPTIONS, quantize, quantizeSymmetric, type QuantizeOptions } from './quantize.ts';
import { smallTabular } from './demo-fixtures.ts';
import { buildCnn, computedWeightModel, makeStripeImages, noWeightsModel, randomRows, subgraphModel } from './test-fixtures.ts';
import { decode, maxAbs, maxAbsDiff, opTypes, runNode, runWeb } from './test-helpers.ts';

const VARIANTS: Array<[string, QuantizeOptions]> = [
  ['qdq per-tensor', { form: 'qdq', perChannel: false }],
  ['qdq per-channel', { form: 'qdq', perChannel: true }],
  ['integer per-tensor', { form: 'integer', perChannel: false }],
  ['integer per-channel', { form: 'integer', perChannel: true }],
];
const FAST = { memory: false, latency: { warmup: 5, maxIterations: 50, maxMs: 100 } } as const;

/** Bytes of each quantized weight before (fp32) and after (int8 tensor + its scales), from the encoded models. */
function payload(parent: Uint8Array, variant: Uint8Array, weights: string[]): { fp32: number; int8: number; scales: number } {
  const sizes = (bytes: Uint8Array) => {
    const out = new Map<string, number>();
    const walk = (g: GraphProto) => {
      for (const t of g.initializer ?? []) out.set(t.name ?? '', t.rawData?.length ?? 0);
      for (const n of g.node ?? []) for (const a of n.attribute ?? []) {
        if (a.t && n.opType === 'Constant') out.set(n.output?.[0] ?? '', a.t.rawData?.length ?? 0);
        if (a.g) walk(a.g);
      }
    };
    walk(decode(bytes).graph!);
    return out;
  };
  const before = sizes(parent);
  const after = sizes(variant);
  const sum = (f: (w: string) => number) => weights.reduce((s, w) => s + f(w), 0);
  return { fp32: sum((w) => before.get(w)!), int8: sum((w) => after.get(`${w}.int8`)!), scales: sum((w) => after.get(`${w}.scale`)!) };
}

describe('quantize: the small tabular MLP (features → Sub/Div → Gemm → Relu → Gemm)', () => {
  let mlp: Uint8Array;
  let test: EvalDataset;
  let parent: ModelEvaluation;
  before(async () => {
    ({ bytes: mlp, test } = smallTabular());
    parent = await evaluateModel(mlp, test, FAST);
    assert.ok(parent.metrics.accuracy! > 0.85, `fixture MLP trains (accuracy ${parent.metrics.accuracy})`);
  });

  for (const [name, opts] of VARIANTS) {
    it(`${name}: meets the accuracy budget, int8 weights ≥ 3.5× smaller, same outputs in onnxruntime-node and -web`, async () => {
      const { bytes, report } = quantize(mlp, opts);
      assert.equal(report.layers.length, 2);
      assert.ok(report.layers.every((l) => l.form === opts.form && l.perChannel === opts.perChannel));
      // mean/std (16) and the biases (19) stay float32: 176 of 211 parameters are quantized.
      assert.equal(report.quantizedParams, 176);
      assert.equal(report.totalParams, 211);
      const ev = await evaluateVariant(bytes, parent, test, FAST);
      const verdict = checkQualityBudget(ev);
      assert.ok(verdict.accepted, verdict.reasons.join('; '));
      // Each weight becomes 1 byte per parameter + one float32 scale per tensor or per output channel.
      // Per tensor that is 3.9× smaller; per channel it is 2.7× here, because W1 has only 8 inputs per
      // output channel (8 bytes of int8 + 4 of scale per 32 bytes of fp32). The whole 1.3 KB file shrinks
      // far less: graph structure, names, metadata and float32 biases are most of it (see quantize.ts).
      const p = payload(mlp, bytes, ['W1', 'W2']);
      assert.equal(p.fp32, 176 * 4);
      assert.equal(p.int8, 176);
      assert.equal(p.scales, 4 * (opts.perChannel ? 16 + 3 : 2));
      if (!opts.perChannel) assert.ok(p.fp32 / (p.int8 + p.scales) >= 3.5);
      const x = test.inputs.subarray(0, 200 * 8);
      const [n, w] = await Promise.all([runNode(bytes, x, [8]), runWeb(bytes, x, [8])]);
      assert.ok(maxAbsDiff(n.data, w.data) <= 1e-4 * Math.max(1, maxAbs(n.data)), `node vs web ${maxAbsDiff(n.data, w.data)}`);
    });
  }

  it('qdq dequantizes to exactly q × scale along the output-channel axis (Gemm transB=1 → axis 0)', async () => {
    const { bytes } = quantize(mlp, { form: 'qdq', perChannel: true });
    const m = decode(bytes);
    const dq = m.graph!.node!.filter((n) => n.opType === 'DequantizeLinear');
    assert.equal(dq.length, 2);
    for (const n of dq) assert.equal(Number(n.attribute!.find((a) => a.name === 'axis')!.i), 0);
    // Independent check: an fp32 model whose weights are q × scale computed here gives the same outputs.
    const inits = new Map(m.graph!.initializer!.map((t) => [t.name!, t]));
    const deq = (w: string) => {
      const q = new Int8Array(Uint8Array.from(inits.get(`${w}.int8`)!.rawData!).buffer);
      const s = new Float32Array(Uint8Array.from(inits.get(`${w}.scale`)!.rawData!).buffer);
      const cols = q.length / s.length;
      return Float32Array.from(q, (v, i) => v * s[Math.floor(i / cols)]);
    };
    const orig = decode(mlp);
    for (const t of orig.graph!.initializer!) {
      if (t.name === 'W1' || t.name === 'W2') {
        const d = deq(t.name);
        t.rawData = new Uint8Array(d.buffer);
      }
    }
    const manual = onnx.ModelProto.encode(orig).finish();
    const x = test.inputs.subarray(0, 100 * 8);
    const [a, b] = await Promise.all([runNode(bytes, x, [8]), runNode(manual, x, [8])]);
    assert.ok(maxAbsDiff(a.data, b.data) < 1e-5);
  });

  it('onnxruntime folds qdq only with session.disable_quant_qdq (what QDQ_SESSION_OPTIONS sets)', async () => {
    const { bytes } = quantize(mlp, { form: 'qdq', perChannel: true });
    const dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-fold-'));
    try {
      const optimized = async (options: ort.InferenceSession.SessionOptions) => {
        const file = path.join(dir, `${Math.random()}.onnx`);
        const s = await ort.InferenceSession.create(bytes, { ...options, graphOptimizationLevel: 'extended', optimizedModelFilePath: file });
        await s.release();
        return opTypes(await readFile(file));
      };
      assert.ok((await optimized({})).includes('DequantizeLinear'), 'without the flag the DequantizeLinear nodes stay (run on every call)');
      assert.ok(!(await optimized({ extra: QDQ_SESSION_OPTIONS.extra })).includes('DequantizeLinear'), 'with it they fold into float32 initializers');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('integer form uses DynamicQuantizeLinear + MatMulInteger, one activation quantizer per input', () => {
    const { bytes } = quantize(mlp, { form: 'integer', perChannel: true });
    const ops = opTypes(bytes);
    assert.equal(ops.filter((o) => o === 'MatMulInteger').length, 2);
    assert.equal(ops.filter((o) => o === 'DynamicQuantizeLinear').length, 2);
    assert.ok(!ops.includes('Gemm'));
    // Weights became [K, N] int8 (transposed from Gemm's [N, K]).
    const m = decode(bytes);
    const w1 = m.graph!.initializer!.find((t) => t.name === 'W1.int8')!;
    assert.deepEqual(w1.dims!.map(Number), [8, 16]);
    assert.equal(w1.dataType, 3);
  });
});

describe('quantize: CNN (Conv → Relu → MaxPool ×2 → Flatten → Gemm)', () => {
  let cnn: Uint8Array;
  let test: EvalDataset;
  let parent: ModelEvaluation;
  before(async () => {
    cnn = await buildCnn(makeStripeImages(600, 1));
    test = makeStripeImages(300, 2);
    parent = await evaluateModel(cnn, test, FAST);
    assert.ok(parent.metrics.accuracy! > 0.75, `fixture CNN learns (accuracy ${parent.metrics.accuracy})`);
  });

  for (const [name, opts] of [...VARIANTS, ['integer per-tensor with ConvInteger', { form: 'integer', perChannel: false, conv: 'integer' }] as [string, QuantizeOptions]]) {
    it(`${name}: file ≥ 3.5× smaller, accuracy budget met, node and web agree`, async () => {
      const { bytes, report } = quantize(cnn, opts);
      assert.equal(report.layers.length, 3);
      assert.ok(report.quantizedParamShare > 0.99, `share ${report.quantizedParamShare}`);
      const ratio = cnn.length / bytes.length;
      assert.ok(ratio >= 3.5, `size ratio ${ratio.toFixed(2)} (${cnn.length} → ${bytes.length} bytes)`);
      const ev = await evaluateVariant(bytes, parent, test, FAST);
      const verdict = checkQualityBudget(ev);
      assert.ok(verdict.accepted, verdict.reasons.join('; '));
      const x = test.inputs.subarray(0, 40 * 3 * 32 * 32);
      const [n, w] = await Promise.all([runNode(bytes, x, [3, 32, 32]), runWeb(bytes, x, [3, 32, 32])]);
      assert.ok(maxAbsDiff(n.data, w.data) <= 1e-3 * Math.max(1, maxAbs(n.data)), `node vs web ${maxAbsDiff(n.data, w.data)}`);
      if (opts.conv === 'integer') assert.equal(opTypes(bytes).filter((o) => o === 'ConvInteger').length, 2);
    });
  }
});

describe('quantize: weights in Constant nodes and If subgraphs', () => {
  const model = subgraphModel();
  const x = randomRows(64, 8, 5);
  for (const [name, opts] of VARIANTS) {
    it(`${name}: quantizes the branch initializer, the branch Constant and the main-graph Constant`, async () => {
      const { bytes, report } = quantize(model, opts);
      assert.deepEqual(report.layers.map((l) => `${l.weight}@${l.location}`).sort(), ['else.weight@main/If_branch.else_branch', 'head.weight@main', 'then.weight@main/If_branch.then_branch']);
      // The float32 Constant nodes are gone; no fp32 copy of a quantized weight survives.
      const m = decode(bytes);
      assert.ok(!m.graph!.node!.some((n) => n.opType === 'Constant'));
      const [fp, q, w] = await Promise.all([runNode(model, x, [8]), runNode(bytes, x, [8]), runWeb(bytes, x, [8])]);
      assert.ok(maxAbsDiff(fp.data, q.data) < 0.05 * maxAbs(fp.data), `quantization error ${maxAbsDiff(fp.data, q.data)}`);
      assert.ok(maxAbsDiff(q.data, w.data) < 1e-4 * Math.max(1, maxAbs(q.data)));
    });
  }
});

describe('quantize: Gemm attributes and the quantizer itself', () => {
  it('a weight also listed as a graph input (older exporters) is quantized and no longer an input', async () => {
    const model = encodeModel({
      opset: 13,
      inputs: [valueInfo('x', 'float32', ['batch', 8]), valueInfo('W', 'float32', [8, 4])],
      outputs: [valueInfo('y', 'float32', ['batch', 4])],
      initializers: [floatTensor('W', [8, 4], Array.from({ length: 32 }, (_, i) => Math.sin(i)))],
      nodes: [node('MatMul', ['x', 'W'], ['y'])],
    });
    const { bytes, report } = quantize(model, { form: 'qdq', perChannel: true });
    assert.deepEqual(decode(bytes).graph!.input!.map((v) => v.name), ['x']);
    assert.match(report.notes[0], /W was also a graph input/);
    const x = randomRows(4, 8, 2);
    // onnxruntime uses the initializer when the overridable input is not fed.
    const [a, b] = await Promise.all([runNode(model, x, [8], 4), runNode(bytes, x, [8], 4)]);
    assert.ok(maxAbsDiff(a.data, b.data) < 0.02 * maxAbs(a.data), `${maxAbsDiff(a.data, b.data)}`);
  });

  it('reports biases as kept float32, not as unknown consumers', () => {
    const { report } = quantize(buildSmallGemm(), { form: 'qdq', perChannel: false });
    assert.match(report.skipped.find((s) => s.weight === 'C')!.reason, /bias of Gemm: kept float32/);
  });

  it('Gemm with transB=0, alpha and beta keeps its result in both forms', async () => {
    const K = 12;
    const N = 6;
    const w = Float32Array.from({ length: K * N }, (_, i) => Math.sin(i * 1.7));
    const c = Float32Array.from({ length: N }, (_, i) => i / 10);
    const model = encodeModel({
      opset: 13,
      inputs: [valueInfo('x', 'float32', ['batch', K])],
      outputs: [valueInfo('y', 'float32', ['batch', N])],
      initializers: [floatTensor('W', [K, N], w), floatTensor('C', [N], c)],
      nodes: [node('Gemm', ['x', 'W', 'C'], ['y'], { alpha: 0.5, beta: 2.5 })],
    });
    const x = randomRows(32, K, 9);
    const fp = await runNode(model, x, [K], 32);
    for (const [, opts] of VARIANTS) {
      const { bytes } = quantize(model, opts);
      const q = await runNode(bytes, x, [K], 32);
      assert.ok(maxAbsDiff(fp.data, q.data) < 0.03 * maxAbs(fp.data), `${opts.form}/${opts.perChannel}: ${maxAbsDiff(fp.data, q.data)}`);
    }
  });

  it('symmetric int8: per-channel scales are max|w|/127 per slice, values clamp to ±127', () => {
    const w = Float32Array.from([1, -2, 0.5, 0, 0, 0, 10, 5, -10]);
    const pc = quantizeSymmetric(w, [3, 3], 0);
    assert.deepEqual(Array.from(pc.scales), [2 / 127, 1, 10 / 127].map(Math.fround));
    assert.deepEqual(Array.from(pc.q), [64, -127, 32, 0, 0, 0, 127, 64, -127]);
    const pt = quantizeSymmetric(w, [3, 3], null);
    assert.equal(pt.scales.length, 1);
    assert.ok(pt.maxAbsError <= pt.scales[0] / 2 + 1e-7);
  });
});

function buildSmallGemm(): Uint8Array {
  return encodeModel({
    opset: 13,
    inputs: [valueInfo('x', 'float32', ['batch', 8])],
    outputs: [valueInfo('y', 'float32', ['batch', 16])],
    initializers: [floatTensor('W', [16, 8], Array.from({ length: 128 }, (_, i) => Math.cos(i))), floatTensor('C', [16], Array.from({ length: 16 }, (_, i) => i / 16))],
    nodes: [node('Gemm', ['x', 'W', 'C'], ['y'], { transB: 1 })],
  });
}

describe('quantize: refusals', () => {
  const mlp = smallTabular({ trainRows: 300, testRows: 1 }).bytes;
  const refused = (fn: () => unknown, reason: string, match?: RegExp) =>
    assert.throws(fn, (err: unknown) => {
      assert.ok(err instanceof OptimizeError, String(err));
      assert.equal(err.reason, reason);
      assert.equal(err.status, 422);
      if (match) assert.match(err.message, match);
      return true;
    });

  it('refuses truncated, random and empty bytes as corrupt', () => {
    refused(() => quantize(mlp.subarray(0, mlp.length - 40), { form: 'qdq', perChannel: false }), 'corrupt_model');
    refused(() => quantize(Uint8Array.from({ length: 500 }, (_, i) => (i * 97 + 13) % 256), { form: 'qdq', perChannel: false }), 'corrupt_model');
    refused(() => quantize(new Uint8Array(0), { form: 'qdq', perChannel: false }), 'corrupt_model');
  });

  it('refuses a graph whose nodes reference tensors that do not exist', () => {
    const m = decode(mlp);
    m.graph!.node![2].input![0] = 'nowhere';
    refused(() => quantize(onnx.ModelProto.encode(m).finish(), { form: 'qdq', perChannel: false }), 'corrupt_model', /nowhere/);
  });

  it('refuses a graph without weights, and one whose MatMul weight is computed, with the reason', () => {
    refused(() => quantize(noWeightsModel(), { form: 'qdq', perChannel: true }), 'not_quantizable', /no MatMul, Gemm or Conv/);
    refused(() => quantize(computedWeightModel(), { form: 'integer', perChannel: false }), 'not_quantizable', /not a constant/);
  });

  it('refuses per-channel qdq below opset 13', () => {
    const m = decode(mlp);
    m.opsetImport![0].version = 11;
    refused(() => quantize(onnx.ModelProto.encode(m).finish(), { form: 'qdq', perChannel: true }), 'unsupported_opset', /opset ≥ 13/);
  });
});
