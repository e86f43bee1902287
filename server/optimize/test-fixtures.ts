/**
 * Models and data for the optimizer's tests and benchmark, built here so they need nothing but this
 * repository: a trained MLP shaped like the demo tabular model (features → Sub/Div standardisation →
 * Gemm → Relu → Gemm → logits), a small CNN on 32×32 shape images (two conv blocks with random
 * He-initialised filters, a Gemm head trained on their features) and odd graphs (weights in Constant
 * nodes and If subgraphs, a graph with no weights) for the edge cases.
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

// ---------------------------------------------------------------- tabular

export const TABULAR_FEATURES = 8;
export const TABULAR_CLASSES = 3;
const SCALES = [1, 0.02, 5, 200, 3, 0.5, 10, 1];
const OFFSETS = [20, 1, -3, 1000, 0, 5, 50, 0];

/**
 * 8 features on very different scales, 3 classes from a noisy non-linear score, and a `region`
 * group attribute (south reads warmer on f0, so class balance differs by region).
 */
export function makeTabular(n: number, seed: number): EvalDataset & { labels: Int32Array; groups: { region: string[] } } {
  const r = rng(seed);
  const x = new Float32Array(n * TABULAR_FEATURES);
  const y = new Int32Array(n);
  const region: string[] = [];
  for (let i = 0; i < n; i++) {
    const south = r.next() < 0.5;
    const z = Array.from({ length: TABULAR_FEATURES }, () => r.normal());
    if (south) z[0] += 0.4;
    const s = z[0] + 0.6 * z[2] + 0.8 * (z[3] * z[3] - 1) + 0.7 * (Math.abs(z[1]) - 0.8) + 0.08 * r.normal();
    y[i] = s < -0.45 ? 0 : s > 0.75 ? 2 : 1;
    for (let j = 0; j < TABULAR_FEATURES; j++) x[i * TABULAR_FEATURES + j] = OFFSETS[j] + SCALES[j] * z[j];
    region.push(south ? 'south' : 'north');
  }
  return { task: 'classification', inputs: x, sampleShape: [TABULAR_FEATURES], labels: y, groups: { region } };
}

/**
 * Trains features[8] → standardise → Gemm(hidden, transB=1) → Relu → Gemm(3, transB=1) with Adam on
 * softmax cross-entropy, in float64, seeded. ~0.3 s for 2,000 rows × 40 epochs at 16 hidden units.
 */
export function trainMlp(data: { inputs: Float32Array; labels: Int32Array }, opts: { hidden?: number; epochs?: number; seed?: number } = {}): Uint8Array {
  const D = TABULAR_FEATURES;
  const C = TABULAR_CLASSES;
  const H = opts.hidden ?? 16;
  const n = data.labels.length;
  const r = rng(opts.seed ?? 1);
  const mean = new Float64Array(D);
  const std = new Float64Array(D);
  for (let i = 0; i < n; i++) for (let j = 0; j < D; j++) mean[j] += data.inputs[i * D + j] / n;
  for (let i = 0; i < n; i++) for (let j = 0; j < D; j++) std[j] += (data.inputs[i * D + j] - mean[j]) ** 2 / n;
  for (let j = 0; j < D; j++) std[j] = Math.sqrt(std[j]) || 1;
  const xs = Float64Array.from(data.inputs, (v, k) => (v - mean[k % D]) / std[k % D]);
  const w1 = Float64Array.from({ length: H * D }, () => r.normal() * Math.sqrt(2 / D));
  const b1 = new Float64Array(H);
  const w2 = Float64Array.from({ length: C * H }, () => r.normal() * Math.sqrt(1 / H));
  const b2 = new Float64Array(C);
  const params = [w1, b1, w2, b2];
  const adam = params.map((p) => ({ m: new Float64Array(p.length), v: new Float64Array(p.length) }));
  const grads = params.map((p) => new Float64Array(p.length));
  const [gw1, gb1, gw2, gb2] = grads;
  const h = new Float64Array(H);
  const dh = new Float64Array(H);
  const p = new Float64Array(C);
  const order = Int32Array.from({ length: n }, (_, i) => i);
  const epochs = opts.epochs ?? 40;
  const batch = 32;
  let t = 0;
  const totalSteps = epochs * Math.ceil(n / batch);
  for (let e = 0; e < epochs; e++) {
    for (let i = n - 1; i > 0; i--) {
      const j = r.int(i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (let start = 0; start < n; start += batch) {
      const end = Math.min(n, start + batch);
      for (const g of grads) g.fill(0);
      for (let k = start; k < end; k++) {
        const i = order[k];
        for (let u = 0; u < H; u++) {
          let s = b1[u];
          for (let j = 0; j < D; j++) s += w1[u * D + j] * xs[i * D + j];
          h[u] = s > 0 ? s : 0;
        }
        let max = -Infinity;
        for (let c = 0; c < C; c++) {
          let s = b2[c];
          for (let u = 0; u < H; u++) s += w2[c * H + u] * h[u];
          p[c] = s;
          if (s > max) max = s;
        }
        let z = 0;
        for (let c = 0; c < C; c++) z += p[c] = Math.exp(p[c] - max);
        dh.fill(0);
        for (let c = 0; c < C; c++) {
          const d = p[c] / z - (c === data.labels[i] ? 1 : 0);
          gb2[c] += d;
          for (let u = 0; u < H; u++) {
            gw2[c * H + u] += d * h[u];
            dh[u] += d * w2[c * H + u];
          }
        }
        for (let u = 0; u < H; u++) {
          if (h[u] <= 0) continue;
          gb1[u] += dh[u];
          for (let j = 0; j < D; j++) gw1[u * D + j] += dh[u] * xs[i * D + j];
        }
      }
      t++;
      const lr = 0.01 * 0.5 * (1 + Math.cos((Math.PI * t) / totalSteps));
      params.forEach((param, pi) => adamStep(param, grads[pi], adam[pi], t, lr, 1 / (end - start)));
    }
  }
  return encodeModel({
    name: 'fixture-mlp',
    opset: 13,
    inputs: [valueInfo('features', 'float32', ['batch', D])],
    outputs: [valueInfo('logits', 'float32', ['batch', C])],
    initializers: [
      floatTensor('mean', [D], mean),
      floatTensor('std', [D], std),
      floatTensor('W1', [H, D], w1),
      floatTensor('B1', [H], b1),
      floatTensor('W2', [C, H], w2),
      floatTensor('B2', [C], b2),
    ],
    nodes: [
      node('Sub', ['features', 'mean'], ['centred']),
      node('Div', ['centred', 'std'], ['standardised']),
      node('Gemm', ['standardised', 'W1', 'B1'], ['hidden_pre'], { transB: 1 }),
      node('Relu', ['hidden_pre'], ['hidden']),
      node('Gemm', ['hidden', 'W2', 'B2'], ['logits'], { transB: 1 }),
    ],
    metadata: { 'flotilla.labels': 'low,medium,high' },
  });
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
