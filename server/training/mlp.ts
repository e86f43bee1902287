/**
 * The built-in tabular trainer: an MLP classifier (8 → hidden ReLU → 3), softmax cross-entropy,
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
import { Adam, argmax, cosineLr, softmaxXent } from './adam.ts';
import { Rng, range } from './random.ts';
import { FEATURES, TABULAR_LABELS, featureMatrix, labelIndices, type TabularRow } from './synthetic-tabular.ts';

/** Everything needed to rebuild the model; plain arrays so it serialises as JSON. */
export interface MlpWeights {
  inputs: number;
  hidden: number;
  classes: number;
  /** Standardisation: x' = (x − mean) / std, per feature. */
  mean: number[];
  std: number[];
  /** [hidden, inputs] row-major (ONNX Gemm with transB = 1). */
  w1: number[];
  b1: number[];
  /** [classes, hidden] row-major. */
  w2: number[];
  b2: number[];
}

export interface MlpOptions {
  seed: number;
  /** Passes over the data. Default 60 (40 when fine-tuning). */
  epochs?: number;
  /** Hidden units. Default 16 (ignored with `init`, which fixes the shape). */
  hidden?: number;
  /** Peak Adam learning rate. Default 0.01 (0.003 when fine-tuning). */
  lr?: number;
  batchSize?: number;
  /** Start from these weights (fine-tuning). Their standardisation is kept so the weights keep their meaning. */
  init?: MlpWeights;
  /** Called after each epoch. */
  onEpoch?: (h: TrainHistory) => void;
}

export interface TrainHistory {
  epoch: number;
  loss: number;
  accuracy: number;
}

export interface MlpModel {
  weights: MlpWeights;
  /** Logits [n, classes] for a row-major float32 batch [n, inputs], computed in float64. */
  forward(x: Float32Array): Float32Array;
  predict(x: Float32Array): Int32Array;
  history: TrainHistory[];
  trainMs: number;
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
  const init = opts.init ?? freshWeights(x, n, D, opts.hidden ?? 16, C, new Rng(rng.fork()));
  if (init.inputs !== D || init.classes !== C) throw new Error(`trainMlp: init has shape ${init.inputs}→${init.classes}, expected ${D}→${C}`);
  const H = init.hidden;
  const epochs = opts.epochs ?? (fineTune ? 40 : 60);
  const lr = opts.lr ?? (fineTune ? 0.003 : 0.01);
  const batch = opts.batchSize ?? 32;

  const mean = Float64Array.from(init.mean);
  const invStd = Float64Array.from(init.std, (s) => 1 / s);
  const w1 = Float64Array.from(init.w1);
  const b1 = Float64Array.from(init.b1);
  const w2 = Float64Array.from(init.w2);
  const b2 = Float64Array.from(init.b2);
  const g = [w1, b1, w2, b2].map((p) => new Float64Array(p.length));
  const [gw1, gb1, gw2, gb2] = g;
  const opt = new Adam([w1, b1, w2, b2]);

  // Standardised inputs once, up front.
  const xs = new Float64Array(n * D);
  for (let i = 0; i < n; i++) for (let j = 0; j < D; j++) xs[i * D + j] = (x[i * D + j] - mean[j]) * invStd[j];

  const h = new Float64Array(H);
  const logits = new Float64Array(C);
  const dl = new Float64Array(C);
  const dh = new Float64Array(H);
  const order = range(n);
  const steps = epochs * Math.ceil(n / batch);
  const history: TrainHistory[] = [];
  let step = 0;
  for (let epoch = 1; epoch <= epochs; epoch++) {
    rng.shuffle(order);
    let lossSum = 0;
    let correct = 0;
    for (let start = 0; start < n; start += batch) {
      const end = Math.min(n, start + batch);
      for (const gi of g) gi.fill(0);
      for (let k = start; k < end; k++) {
        const i = order[k];
        const xo = i * D;
        for (let u = 0; u < H; u++) {
          let s = b1[u];
          for (let j = 0; j < D; j++) s += w1[u * D + j] * xs[xo + j];
          h[u] = s > 0 ? s : 0;
        }
        for (let c = 0; c < C; c++) {
          let s = b2[c];
          for (let u = 0; u < H; u++) s += w2[c * H + u] * h[u];
          logits[c] = s;
        }
        lossSum += softmaxXent(logits, 0, C, y[i], dl, 0);
        if (argmax(logits, 0, C) === y[i]) correct++;
        dh.fill(0);
        for (let c = 0; c < C; c++) {
          gb2[c] += dl[c];
          for (let u = 0; u < H; u++) {
            gw2[c * H + u] += dl[c] * h[u];
            dh[u] += dl[c] * w2[c * H + u];
          }
        }
        for (let u = 0; u < H; u++) {
          if (h[u] <= 0) continue;
          gb1[u] += dh[u];
          for (let j = 0; j < D; j++) gw1[u * D + j] += dh[u] * xs[xo + j];
        }
      }
      const scale = 1 / (end - start);
      for (const gi of g) for (let k = 0; k < gi.length; k++) gi[k] *= scale;
      opt.step(g, cosineLr(lr, step++, steps));
    }
    const record = { epoch, loss: lossSum / n, accuracy: correct / n };
    history.push(record);
    opts.onEpoch?.(record);
  }
  const weights: MlpWeights = {
    inputs: D,
    hidden: H,
    classes: C,
    mean: Array.from(mean),
    std: Array.from(init.std),
    w1: Array.from(w1),
    b1: Array.from(b1),
    w2: Array.from(w2),
    b2: Array.from(b2),
  };
  return { ...mlpFromWeights(weights), history, trainMs: performance.now() - started };
}

function freshWeights(x: Float32Array, n: number, D: number, H: number, C: number, rng: Rng): MlpWeights {
  const mean = new Array<number>(D).fill(0);
  const std = new Array<number>(D).fill(0);
  for (let i = 0; i < n; i++) for (let j = 0; j < D; j++) mean[j] += x[i * D + j] / n;
  for (let i = 0; i < n; i++) for (let j = 0; j < D; j++) std[j] += (x[i * D + j] - mean[j]) ** 2 / n;
  for (let j = 0; j < D; j++) std[j] = Math.sqrt(std[j]) || 1; // a constant feature must not divide by 0
  return {
    inputs: D,
    hidden: H,
    classes: C,
    mean,
    std,
    w1: Array.from({ length: H * D }, () => rng.normal(0, Math.sqrt(2 / D))), // He
    b1: new Array<number>(H).fill(0),
    w2: Array.from({ length: C * H }, () => rng.normal(0, Math.sqrt(1 / H))),
    b2: new Array<number>(C).fill(0),
  };
}

/** A model (forward/predict) from weights, e.g. ones read back with `mlpWeightsFromOnnx`. */
export function mlpFromWeights(weights: MlpWeights): Omit<MlpModel, 'history' | 'trainMs'> {
  const { inputs: D, hidden: H, classes: C, mean, std, w1, b1, w2, b2 } = weights;
  const forward = (x: Float32Array): Float32Array => {
    const n = x.length / D;
    if (!Number.isInteger(n)) throw new Error(`forward: input length ${x.length} is not a multiple of ${D}`);
    const out = new Float32Array(n * C);
    const xs = new Float64Array(D);
    const h = new Float64Array(H);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < D; j++) xs[j] = (x[i * D + j] - mean[j]) / std[j];
      for (let u = 0; u < H; u++) {
        let s = b1[u];
        for (let j = 0; j < D; j++) s += w1[u * D + j] * xs[j];
        h[u] = s > 0 ? s : 0;
      }
      for (let c = 0; c < C; c++) {
        let s = b2[c];
        for (let u = 0; u < H; u++) s += w2[c * H + u] * h[u];
        out[i * C + c] = s;
      }
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
 * ONNX (opset 13): `features` float32 [batch, 8] → Sub(mean) → Div(std) → Gemm → Relu → Gemm →
 * `logits` float32 [batch, 3]. Labels and feature order go into metadata_props.
 */
export function exportMlpOnnx(model: Pick<MlpModel, 'weights'>, metadata: Record<string, string> = {}): Uint8Array {
  const w = model.weights;
  return encodeModel({
    name: 'tabular-mlp',
    opset: 13,
    docString: `MLP ${w.inputs}-${w.hidden}-${w.classes} trained by flotilla's built-in trainer`,
    inputs: [valueInfo('features', 'float32', ['batch', w.inputs])],
    outputs: [valueInfo('logits', 'float32', ['batch', w.classes])],
    initializers: [
      floatTensor('mean', [w.inputs], w.mean),
      floatTensor('std', [w.inputs], w.std),
      floatTensor('W1', [w.hidden, w.inputs], w.w1),
      floatTensor('B1', [w.hidden], w.b1),
      floatTensor('W2', [w.classes, w.hidden], w.w2),
      floatTensor('B2', [w.classes], w.b2),
    ],
    nodes: [
      node('Sub', ['features', 'mean'], ['centred']),
      node('Div', ['centred', 'std'], ['standardised']),
      node('Gemm', ['standardised', 'W1', 'B1'], ['hidden_pre'], { transB: 1 }),
      node('Relu', ['hidden_pre'], ['hidden']),
      node('Gemm', ['hidden', 'W2', 'B2'], ['logits'], { transB: 1 }),
    ],
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
  const [classes] = get('W2').dims;
  const arr = (name: string) => Array.from(get(name).data);
  return { inputs, hidden, classes, mean: arr('mean'), std: arr('std'), w1: arr('W1'), b1: arr('B1'), w2: arr('W2'), b2: arr('B2') };
}
