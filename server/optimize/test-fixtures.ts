/**
 * Models and data for the optimizer's tests and benchmark beyond the demo models (demo-fixtures.ts):
 * a CNN on 32×32 texture images whose weights dominate its file (two conv blocks with random
 * He-initialised filters and a 2,048-input Gemm head trained on their features, 45 KB — what the ~4×
 * int8 size claim needs), and odd graphs (weights in Constant nodes and If subgraphs, a graph with no
 * weights, a computed weight) for the edge cases.
 */
import { encodeModel, floatTensor, node, valueInfo } from '../onnx/build.ts';
import { gaussian, mulberry32 } from '../../protocol/sketch/random.ts';
import { inferAll, modelIo, openSession } from './runtime.ts';
import type { EvalDataset } from './evaluate.ts';

export interface Rng {
  next: () => number;
  normal: () => number;
  int: (n: number) => number;
}

export function rng(seed: number): Rng {
  const next = mulberry32(seed);
  const normal = gaussian(next);
  return { next, normal, int: (n) => Math.floor(next() * n) };
}

function adamStep(p: Float64Array, g: Float64Array, s: { m: Float64Array; v: Float64Array }, t: number, lr: number, scale: number) {
  const b1 = 0.9;
  const b2 = 0.999;
  for (let k = 0; k < p.length; k++) {
    const gk = g[k] * scale;
    s.m[k] = b1 * s.m[k] + (1 - b1) * gk;
    s.v[k] = b2 * s.v[k] + (1 - b2) * gk * gk;
    p[k] -= (lr * (s.m[k] / (1 - b1 ** t))) / (Math.sqrt(s.v[k] / (1 - b2 ** t)) + 1e-8);
  }
}

// ---------------------------------------------------------------- images

export const IMAGE = 32;

/**
 * 32×32 RGB texture images (NCHW, normalised to [-1, 1]): stripes that run horizontally (0),
 * vertically (1) or diagonally (2), with random period, phase, ±12° jitter, colours and pixel noise.
 * Orientation is what small random 3×3 filters respond to, so a trained head on top of them does well.
 */
export function makeStripeImages(n: number, seed: number): EvalDataset & { labels: Int32Array } {
  const r = rng(seed);
  const S = IMAGE;
  const x = new Float32Array(n * 3 * S * S);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const label = r.int(3);
    y[i] = label;
    const bg = [r.next(), r.next(), r.next()];
    let fg = [r.next(), r.next(), r.next()];
    const luma = (c: number[]) => 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
    while (Math.abs(luma(fg) - luma(bg)) < 0.25) fg = [r.next(), r.next(), r.next()];
    const angle = [0, Math.PI / 2, Math.PI / 4][label] + (r.next() - 0.5) * (Math.PI / 7.5);
    const period = 4 + 5 * r.next();
    const phase = r.next() * period;
    const [ca, sa] = [Math.cos(angle), Math.sin(angle)];
    for (let py = 0; py < S; py++) {
      for (let px = 0; px < S; px++) {
        // Distance across the stripes: the coordinate along the normal of the stripe direction.
        const across = -px * sa + py * ca + phase;
        const on = ((across % period) + period) % period < period / 2;
        const c = on ? fg : bg;
        for (let ch = 0; ch < 3; ch++) {
          const v = Math.min(1, Math.max(0, c[ch] + 0.05 * r.normal()));
          x[((i * 3 + ch) * S + py) * S + px] = (v - 0.5) / 0.5;
        }
      }
    }
  }
  return { task: 'classification', inputs: x, sampleShape: [3, S, S], labels: y };
}

/**
 * image[3,32,32] → Conv(16, 3×3) → Relu → MaxPool 2 → Conv(32, 3×3) → Relu → MaxPool 2 → Flatten →
 * Gemm(3) → logits. The conv filters are random (He init, seeded); the Gemm head is trained with
 * softmax regression on the conv features of `train` (computed with onnxruntime), which is enough
 * for a model whose predictions are meaningful and whose accuracy quantization can hurt.
 */
export async function buildCnn(train: { inputs: Float32Array; labels: Int32Array }, opts: { seed?: number; c1?: number; c2?: number; epochs?: number } = {}): Promise<Uint8Array> {
  const r = rng(opts.seed ?? 7);
  const c1 = opts.c1 ?? 16;
  const c2 = opts.c2 ?? 32;
  const feat = c2 * 8 * 8;
  const he = (n: number, fanIn: number) => Float32Array.from({ length: n }, () => r.normal() * Math.sqrt(2 / fanIn));
  const wc1 = he(c1 * 3 * 9, 27);
  const bc1 = Float32Array.from({ length: c1 }, () => 0.05 * r.normal());
  const wc2 = he(c2 * c1 * 9, c1 * 9);
  const bc2 = Float32Array.from({ length: c2 }, () => 0.05 * r.normal());
  const trunkInits = [floatTensor('conv1.weight', [c1, 3, 3, 3], wc1), floatTensor('conv1.bias', [c1], bc1), floatTensor('conv2.weight', [c2, c1, 3, 3], wc2), floatTensor('conv2.bias', [c2], bc2)];
  const trunkNodes = [
    node('Conv', ['image', 'conv1.weight', 'conv1.bias'], ['c1'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
    node('Relu', ['c1'], ['r1']),
    node('MaxPool', ['r1'], ['p1'], { kernel_shape: [2, 2], strides: [2, 2] }),
    node('Conv', ['p1', 'conv2.weight', 'conv2.bias'], ['c2'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
    node('Relu', ['c2'], ['r2']),
    node('MaxPool', ['r2'], ['p2'], { kernel_shape: [2, 2], strides: [2, 2] }),
    node('Flatten', ['p2'], ['flat'], { axis: 1 }),
  ];
  const trunk = encodeModel({
    opset: 13,
    inputs: [valueInfo('image', 'float32', ['batch', 3, IMAGE, IMAGE])],
    outputs: [valueInfo('flat', 'float32', ['batch', feat])],
    initializers: trunkInits,
    nodes: trunkNodes,
  });
  const session = await openSession(trunk);
  const features = await inferAll(session, modelIo(trunk), train.inputs, [3, IMAGE, IMAGE], 64);
  await session.release();
  const { w, b } = softmaxRegression(features.data, train.labels, feat, 3, opts.epochs ?? 60, r);
  return encodeModel({
    name: 'fixture-cnn',
    opset: 13,
    inputs: [valueInfo('image', 'float32', ['batch', 3, IMAGE, IMAGE])],
    outputs: [valueInfo('logits', 'float32', ['batch', 3])],
    initializers: [...trunkInits, floatTensor('fc.weight', [3, feat], w), floatTensor('fc.bias', [3], b)],
    nodes: [...trunkNodes, node('Gemm', ['flat', 'fc.weight', 'fc.bias'], ['logits'], { transB: 1 })],
    metadata: { 'flotilla.labels': 'circle,square,triangle' },
  });
}

/** Full-batch gradient descent with Adam on standardised-by-scale features (weights rescaled back). */
function softmaxRegression(x: Float32Array, y: Int32Array, D: number, C: number, epochs: number, r: Rng): { w: Float32Array; b: Float32Array } {
  const n = y.length;
  let scale = 0;
  for (let k = 0; k < x.length; k++) scale = Math.max(scale, Math.abs(x[k]));
  scale = scale || 1;
  const w = Float64Array.from({ length: C * D }, () => 0.01 * r.normal());
  const b = new Float64Array(C);
  const gw = new Float64Array(C * D);
  const gb = new Float64Array(C);
  const sw = { m: new Float64Array(C * D), v: new Float64Array(C * D) };
  const sb = { m: new Float64Array(C), v: new Float64Array(C) };
  const p = new Float64Array(C);
  for (let t = 1; t <= epochs; t++) {
    gw.fill(0);
    gb.fill(0);
    for (let i = 0; i < n; i++) {
      let max = -Infinity;
      for (let c = 0; c < C; c++) {
        let s = b[c];
        for (let j = 0; j < D; j++) s += w[c * D + j] * (x[i * D + j] / scale);
        p[c] = s;
        if (s > max) max = s;
      }
      let z = 0;
      for (let c = 0; c < C; c++) z += p[c] = Math.exp(p[c] - max);
      for (let c = 0; c < C; c++) {
        const d = p[c] / z - (c === y[i] ? 1 : 0);
        gb[c] += d;
        for (let j = 0; j < D; j++) gw[c * D + j] += d * (x[i * D + j] / scale);
      }
    }
    adamStep(w, gw, sw, t, 0.05, 1 / n);
    adamStep(b, gb, sb, t, 0.05, 1 / n);
  }
  return { w: Float32Array.from(w, (v) => v / scale), b: Float32Array.from(b) };
}

// ---------------------------------------------------------------- odd graphs

/**
 * x[batch, 8] → If(sum(x) > 0): then Gemm with a weight initializer inside the branch, else MatMul with
 * a weight in a Constant node inside the branch → Relu → MatMul with a main-graph Constant-node weight → y[batch, 4].
 */
export function subgraphModel(seed = 3): Uint8Array {
  const r = rng(seed);
  const w = (n: number) => Float32Array.from({ length: n }, () => r.normal() * 0.4);
  const thenBranch = {
    name: 'then',
    input: [],
    output: [valueInfo('t_out', 'float32', ['batch', 16])],
    initializer: [floatTensor('then.weight', [16, 8], w(128)), floatTensor('then.bias', [16], w(16))],
    node: [node('Gemm', ['x', 'then.weight', 'then.bias'], ['t_out'], { transB: 1 })],
  };
  const elseBranch = {
    name: 'else',
    input: [],
    output: [valueInfo('e_out', 'float32', ['batch', 16])],
    initializer: [],
    node: [node('Constant', [], ['else.weight'], { value: floatTensor('else.weight_value', [8, 16], w(128)) }), node('MatMul', ['x', 'else.weight'], ['e_out'])],
  };
  const ifNode = node('If', ['cond'], ['branch'], {});
  ifNode.attribute = [
    { name: 'then_branch', type: 5 /* GRAPH */, g: thenBranch },
    { name: 'else_branch', type: 5, g: elseBranch },
  ];
  return encodeModel({
    name: 'fixture-subgraphs',
    opset: 13,
    inputs: [valueInfo('x', 'float32', ['batch', 8])],
    outputs: [valueInfo('y', 'float32', ['batch', 4])],
    initializers: [floatTensor('zero', [], [0])],
    nodes: [
      node('ReduceSum', ['x'], ['total'], { keepdims: 0 }),
      node('Greater', ['total', 'zero'], ['cond']),
      ifNode,
      node('Relu', ['branch'], ['act']),
      node('Constant', [], ['head.weight'], { value: floatTensor('head.weight_value', [16, 4], w(64)) }),
      node('MatMul', ['act', 'head.weight'], ['y']),
    ],
  });
}

/** A valid model with no weight matrix at all: y = Relu(x + 1). */
export function noWeightsModel(): Uint8Array {
  return encodeModel({
    opset: 13,
    inputs: [valueInfo('x', 'float32', ['batch', 4])],
    outputs: [valueInfo('y', 'float32', ['batch', 4])],
    initializers: [floatTensor('one', [], [1])],
    nodes: [node('Add', ['x', 'one'], ['s']), node('Relu', ['s'], ['y'])],
  });
}

/** A model whose only MatMul multiplies two inputs (nothing constant to quantize). */
export function computedWeightModel(): Uint8Array {
  return encodeModel({
    opset: 13,
    inputs: [valueInfo('x', 'float32', ['batch', 4]), valueInfo('w', 'float32', [4, 4])],
    outputs: [valueInfo('y', 'float32', ['batch', 4])],
    initializers: [],
    nodes: [node('MatMul', ['x', 'w'], ['y'])],
  });
}

/** Random inputs for the subgraph fixture (both branches get exercised). */
export function randomRows(n: number, width: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n * width }, () => r.normal());
}
