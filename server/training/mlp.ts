/**
 * The built-in tabular trainer: an MLP classifier (8 → one or two hidden ReLU layers → 3), softmax cross-entropy,
 * mini-batch Adam with cosine decay, He initialisation, all seeded — the same rows and options give
 * the same weights and the same ONNX bytes.
 *
 * Standardisation (training mean/std per feature) is exported as explicit Sub/Div nodes rather than
 * folded into the first Gemm: the features span 0.02 … 200 in std, and folding would give the weight
 * columns scales 10⁴ apart, which per-tensor int8 quantization (the optimizer's job) cannot represent.
 *
 * @example
 * const model = trainMlp(rows, { seed: 1 });
 * const onnxBytes = exportMlpOnnx(model);                 // features [batch, 8] → logits [batch, 3]
 * const tuned = trainMlp(newRows, { seed: 2, init: model.weights, epochs: 20 });
 */
import { encodeModel, floatTensor, node, readFloatInitializers, valueInfo } from '../onnx/build.ts';
import { argmax, softmaxXent } from './adam.ts';
import { trainMinibatches, type TrainHistory } from './minibatch.ts';
import { Rng } from './random.ts';
import { FEATURES, TABULAR_LABELS, featureMatrix, labelIndices, type TabularRow } from './synthetic-tabular.ts';

/**
 * Everything needed to rebuild the model; plain arrays so it serialises as JSON. One hidden layer
 * (`w1`, `w2`), or two when `hidden2` is set (`w1`, `w2`, `w3`), like the demo model (DEMO_MLP_HIDDEN).
 */
export interface MlpWeights {
  inputs: number;
  /** Units of the first hidden layer. */
  hidden: number;
  /** Units of the second hidden layer, when there is one. */
  hidden2?: number;
  classes: number;
  /** Standardisation: x' = (x − mean) / std, per feature. */
  mean: number[];
  std: number[];
  /** [hidden, inputs] row-major (ONNX Gemm with transB = 1). */
  w1: number[];
  b1: number[];
  /** [classes, hidden] row-major — or [hidden2, hidden] with a second hidden layer. */
  w2: number[];
  b2: number[];
  /** [classes, hidden2] row-major, with a second hidden layer. */
  w3?: number[];
  b3?: number[];
}

/**
 * The demo model's hidden layers: big enough that weights, not graph overhead and float32 biases, make
 * up the file (int8 QDQ ≈ 3.6× smaller; 128 → 64 measured 3.47×), small enough to train in seconds.
 */
export const DEMO_MLP_HIDDEN = [192, 64];

export interface MlpOptions {
  seed: number;
  /** Passes over the data. Default 60 (40 when fine-tuning). */
  epochs?: number;
  /** Hidden units, or two layers' units (e.g. DEMO_MLP_HIDDEN). Default 16 (ignored with `init`, which fixes the shape). */
  hidden?: number | number[];
  /** Peak Adam learning rate. Default 0.01 (0.003 when fine-tuning). */
  lr?: number;
  batchSize?: number;
  /** Start from these weights (fine-tuning). Their standardisation is kept so the weights keep their meaning. */
  init?: MlpWeights;
  /** Called after each epoch. */
  onEpoch?: (h: TrainHistory) => void;
}

export interface MlpModel {
  weights: MlpWeights;
  /** Logits [n, classes] for a row-major float32 batch [n, inputs], computed in float64. */
  forward(x: Float32Array): Float32Array;
  predict(x: Float32Array): Int32Array;
  history: TrainHistory[];
  trainMs: number;
}

/** One dense layer: w is [out, in] row-major. */
interface Layer {
  nIn: number;
  nOut: number;
  w: Float64Array;
  b: Float64Array;
}

function layersOf(w: MlpWeights): Layer[] {
  const sizes = [w.inputs, w.hidden, ...(w.hidden2 ? [w.hidden2] : []), w.classes];
  const params = [[w.w1, w.b1], [w.w2, w.b2], ...(w.hidden2 ? [[w.w3!, w.b3!]] : [])];
  return params.map(([wt, b], l) => ({ nIn: sizes[l], nOut: sizes[l + 1], w: Float64Array.from(wt), b: Float64Array.from(b) }));
}

function weightsOf(base: Pick<MlpWeights, 'mean' | 'std'>, layers: Layer[]): MlpWeights {
  const arr = (a: Float64Array) => Array.from(a);
  const [l1, l2, l3] = layers;
  return {
    inputs: l1.nIn,
    hidden: l1.nOut,
    ...(l3 ? { hidden2: l2.nOut } : {}),
    classes: layers.at(-1)!.nOut,
    mean: [...base.mean],
    std: [...base.std],
    w1: arr(l1.w),
    b1: arr(l1.b),
    w2: arr(l2.w),
    b2: arr(l2.b),
    ...(l3 ? { w3: arr(l3.w), b3: arr(l3.b) } : {}),
  };
}

/** Forward pass of one standardised sample: fills acts[l + 1] from acts[l]; ReLU on hidden layers. */
function forwardSample(layers: Layer[], acts: Float64Array[]): void {
  const last = layers.length - 1;
  for (let l = 0; l <= last; l++) {
    const { nIn, nOut, w, b } = layers[l];
    const a = acts[l];
    const z = acts[l + 1];
    for (let u = 0; u < nOut; u++) {
      let s = b[u];
      const o = u * nIn;
      for (let j = 0; j < nIn; j++) s += w[o + j] * a[j];
      z[u] = l < last && s < 0 ? 0 : s;
    }
  }
}

export function trainMlp(rows: readonly TabularRow[], opts: MlpOptions): MlpModel {
  if (rows.length === 0) throw new Error('trainMlp: no rows');
  const started = performance.now();
  const x = featureMatrix(rows);
  const y = labelIndices(rows);
  const D = FEATURES.length;
  const C = TABULAR_LABELS.length;
  const n = rows.length;
  const rng = new Rng(opts.seed);
  const fineTune = opts.init !== undefined;
  const hidden = typeof opts.hidden === 'number' ? [opts.hidden] : (opts.hidden ?? [16]);
  if (hidden.length < 1 || hidden.length > 2) throw new Error(`trainMlp: one or two hidden layers, got ${hidden.length}`);
  const init = opts.init ?? freshWeights(x, n, D, hidden, C, new Rng(rng.fork()));
  if (init.inputs !== D || init.classes !== C) throw new Error(`trainMlp: init has shape ${init.inputs}→${init.classes}, expected ${D}→${C}`);
  const epochs = opts.epochs ?? (fineTune ? 40 : 60);
  const lr = opts.lr ?? (fineTune ? 0.003 : 0.01);
  const batchSize = opts.batchSize ?? 32;

  const mean = Float64Array.from(init.mean);
  const invStd = Float64Array.from(init.std, (s) => 1 / s);
  const layers = layersOf(init);
  const L = layers.length;
  const params = layers.flatMap((l) => [l.w, l.b]);

  // Standardised inputs once, up front.
  const xs = new Float64Array(n * D);
  for (let i = 0; i < n; i++) for (let j = 0; j < D; j++) xs[i * D + j] = (x[i * D + j] - mean[j]) * invStd[j];

  const acts = [new Float64Array(D), ...layers.map((l) => new Float64Array(l.nOut))];
  const deltas = layers.map((l) => new Float64Array(l.nOut));
  const history = trainMinibatches({ params, n, epochs, batchSize, lr, rng, onEpoch: opts.onEpoch }, (samples, g, tally) => {
    for (let k = 0; k < samples.length; k++) {
      const i = samples[k];
      acts[0].set(xs.subarray(i * D, (i + 1) * D));
      forwardSample(layers, acts);
      tally.loss += softmaxXent(acts[L], 0, C, y[i], deltas[L - 1], 0);
      if (argmax(acts[L], 0, C) === y[i]) tally.correct++;
      for (let l = L - 1; l >= 0; l--) {
        const { nIn, nOut, w } = layers[l];
        const gw = g[2 * l];
        const gb = g[2 * l + 1];
        const d = deltas[l];
        const a = acts[l];
        const below = l > 0 ? deltas[l - 1] : null;
        below?.fill(0);
        for (let u = 0; u < nOut; u++) {
          const du = d[u];
          if (du === 0) continue;
          gb[u] += du;
          const o = u * nIn;
          for (let j = 0; j < nIn; j++) gw[o + j] += du * a[j];
          if (below) for (let j = 0; j < nIn; j++) below[j] += du * w[o + j];
        }
        // ReLU: no gradient through units that were off.
        if (below) for (let j = 0; j < nIn; j++) if (a[j] <= 0) below[j] = 0;
      }
    }
  });
  const weights = weightsOf({ mean: Array.from(mean), std: init.std }, layers);
  return { ...mlpFromWeights(weights), history, trainMs: performance.now() - started };
}

function freshWeights(x: Float32Array, n: number, D: number, hidden: number[], C: number, rng: Rng): MlpWeights {
  const mean = new Array<number>(D).fill(0);
  const std = new Array<number>(D).fill(0);
  for (let i = 0; i < n; i++) for (let j = 0; j < D; j++) mean[j] += x[i * D + j] / n;
  for (let i = 0; i < n; i++) for (let j = 0; j < D; j++) std[j] += (x[i * D + j] - mean[j]) ** 2 / n;
  for (let j = 0; j < D; j++) std[j] = Math.sqrt(std[j]) || 1; // a constant feature must not divide by 0
  const sizes = [D, ...hidden, C];
  // He initialisation for layers feeding a ReLU, 1/fan-in for the logits.
  const layers: Layer[] = sizes.slice(1).map((nOut, l) => {
    const nIn = sizes[l];
    const sd = Math.sqrt((l < hidden.length ? 2 : 1) / nIn);
    return { nIn, nOut, w: Float64Array.from({ length: nOut * nIn }, () => rng.normal(0, sd)), b: new Float64Array(nOut) };
  });
  return weightsOf({ mean, std }, layers);
}

/** A model (forward/predict) from weights, e.g. ones read back with `mlpWeightsFromOnnx`. */
export function mlpFromWeights(weights: MlpWeights): Omit<MlpModel, 'history' | 'trainMs'> {
  const { inputs: D, classes: C, mean, std } = weights;
  const layers = layersOf(weights);
  const forward = (x: Float32Array): Float32Array => {
    const n = x.length / D;
    if (!Number.isInteger(n)) throw new Error(`forward: input length ${x.length} is not a multiple of ${D}`);
    const out = new Float32Array(n * C);
    const acts = [new Float64Array(D), ...layers.map((l) => new Float64Array(l.nOut))];
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < D; j++) acts[0][j] = (x[i * D + j] - mean[j]) / std[j];
      forwardSample(layers, acts);
      out.set(acts[layers.length], i * C);
    }
    return out;
  };
  const predict = (x: Float32Array): Int32Array => {
    const logits = forward(x);
    return Int32Array.from({ length: logits.length / C }, (_, i) => argmax(logits, i * C, C));
  };
  return { weights, forward, predict };
}

/**
 * ONNX (opset 13): `features` float32 [batch, 8] → Sub(mean) → Div(std) → (Gemm → Relu) per hidden
 * layer → Gemm → `logits` float32 [batch, 3]. Labels and feature order go into metadata_props.
 */
export function exportMlpOnnx(model: Pick<MlpModel, 'weights'>, metadata: Record<string, string> = {}): Uint8Array {
  const w = model.weights;
  const layers = layersOf(w);
  const shape = [w.inputs, ...layers.map((l) => l.nOut)].join('-');
  let input = 'standardised';
  const nodes = [node('Sub', ['features', 'mean'], ['centred']), node('Div', ['centred', 'std'], ['standardised'])];
  layers.forEach((_, l) => {
    const k = l + 1;
    const last = l === layers.length - 1;
    // Names of the one-hidden-layer export are kept (hidden_pre, hidden), so older files read the same.
    const pre = last ? 'logits' : layers.length === 2 ? 'hidden_pre' : `hidden${k}_pre`;
    nodes.push(node('Gemm', [input, `W${k}`, `B${k}`], [pre], { transB: 1 }));
    if (!last) {
      input = layers.length === 2 ? 'hidden' : `hidden${k}`;
      nodes.push(node('Relu', [pre], [input]));
    }
  });
  return encodeModel({
    name: 'tabular-mlp',
    opset: 13,
    docString: `MLP ${shape} trained by flotilla's built-in trainer`,
    inputs: [valueInfo('features', 'float32', ['batch', w.inputs])],
    outputs: [valueInfo('logits', 'float32', ['batch', w.classes])],
    initializers: [
      floatTensor('mean', [w.inputs], w.mean),
      floatTensor('std', [w.inputs], w.std),
      ...layers.flatMap((l, i) => [floatTensor(`W${i + 1}`, [l.nOut, l.nIn], l.w), floatTensor(`B${i + 1}`, [l.nOut], l.b)]),
    ],
    nodes,
    metadata: {
      'flotilla.trainer': 'mlp',
      'flotilla.features': FEATURES.join(','),
      'flotilla.labels': TABULAR_LABELS.join(','),
      ...metadata,
    },
  });
}

/** Weights back from an ONNX this module exported (fine-tuning a registered version). */
export function mlpWeightsFromOnnx(bytes: Uint8Array): MlpWeights {
  const t = readFloatInitializers(bytes);
  const get = (name: string) => {
    const v = t.get(name);
    if (!v) throw new Error(`not a flotilla MLP: initializer ${name} missing (quantized models cannot be fine-tuned)`);
    return v;
  };
  const [hidden, inputs] = get('W1').dims;
  const arr = (name: string) => Array.from(get(name).data);
  const base = { inputs, hidden, mean: arr('mean'), std: arr('std'), w1: arr('W1'), b1: arr('B1'), w2: arr('W2'), b2: arr('B2') };
  if (!t.has('W3')) return { ...base, classes: get('W2').dims[0] };
  return { ...base, hidden2: get('W2').dims[0], classes: get('W3').dims[0], w3: arr('W3'), b3: arr('B3') };
}
