// The model shapes users' exporters write (issue 17), built in code, small: tree ensembles as
// skl2onnx writes them (with and without ZipMap), pre-quantized graphs (QOperator and QDQ), NHWC and
// grayscale image models, float16, and a control-flow model with its weights inside the subgraph.
import { onnx, type GraphProto, type ValueInfoProto } from '../../server/onnx/onnx-proto.ts';
import { encodeModel, floatTensor, int64Tensor, int8Tensor, node, uint8Tensor, valueInfo, type ModelSpec } from '../../server/onnx/build.ts';
import { toFloat16Bits } from '../../firmware-bundles/float16.ts';

const w = (n: number, seed: number, scale = 0.3): number[] => Array.from({ length: n }, (_, i) => Math.sin((i + 1) * 7.31 * seed) * scale);

/** The attributes of a few complete depth-2 trees on 4 features (nodes 0–2 split, 3–6 are leaves). */
function trees(count: number) {
  const t = { treeIds: [] as number[], nodeIds: [] as number[], featureIds: [] as number[], values: [] as number[], modes: [] as string[], trueIds: [] as number[], falseIds: [] as number[] };
  for (let tree = 0; tree < count; tree++) {
    for (let n = 0; n < 7; n++) {
      const leaf = n >= 3;
      t.treeIds.push(tree);
      t.nodeIds.push(n);
      t.featureIds.push(leaf ? 0 : (tree + n) % 4);
      t.values.push(leaf ? 0 : Math.round(w(1, tree * 7 + n + 1, 1)[0] * 100) / 100);
      t.modes.push(leaf ? 'LEAF' : 'BRANCH_LEQ');
      t.trueIds.push(leaf ? 0 : 2 * n + 1);
      t.falseIds.push(leaf ? 0 : 2 * n + 2);
    }
  }
  return t;
}

export const FOREST = { trees: 3, nodes: 21, leaves: 12, classes: [0, 1, 2] } as const;

function treeNodeAttrs(t: ReturnType<typeof trees>) {
  return {
    nodes_treeids: t.treeIds,
    nodes_nodeids: t.nodeIds,
    nodes_featureids: t.featureIds,
    nodes_values: { floats: t.values },
    nodes_modes: t.modes,
    nodes_truenodeids: t.trueIds,
    nodes_falsenodeids: t.falseIds,
  };
}

/** A value info whose type is a sequence of maps int64 → float (what ZipMap outputs). */
function seqMapInfo(name: string): ValueInfoProto {
  return { name, type: { sequenceType: { elemType: { mapType: { keyType: 7, valueType: { tensorType: { elemType: 1, shape: { dim: [] } } } } } } } };
}

/**
 * A random forest exported as skl2onnx does: `input` float32 [N, 4] → TreeEnsembleClassifier →
 * `output_label` int64 [N] and `output_probability`, either float32 [N, 3] (`zipmap: false`) or, by
 * default, a sequence of maps {class: probability} through ZipMap.
 */
export function forestClassifier(zipmap: boolean): Uint8Array {
  const t = trees(FOREST.trees);
  const leaves = t.modes.flatMap((m, i) => (m === 'LEAF' ? [i] : []));
  const cls = { treeIds: [] as number[], nodeIds: [] as number[], ids: [] as number[], weights: [] as number[] };
  for (const i of leaves) {
    const p = [0.2, 0.3, 0.5].map((_, c) => Math.abs(Math.sin(i * 3.1 + c * 1.7)) + 0.05);
    const sum = p.reduce((a, b) => a + b, 0);
    p.forEach((v, c) => {
      cls.treeIds.push(t.treeIds[i]);
      cls.nodeIds.push(t.nodeIds[i]);
      cls.ids.push(c);
      cls.weights.push(v / sum / FOREST.trees);
    });
  }
  const ensemble = node('TreeEnsembleClassifier', ['input'], ['label', 'probabilities'], {
    ...treeNodeAttrs(t),
    class_treeids: cls.treeIds,
    class_nodeids: cls.nodeIds,
    class_ids: cls.ids,
    class_weights: { floats: cls.weights },
    classlabels_int64s: [...FOREST.classes],
    post_transform: 'NONE',
  });
  ensemble.domain = 'ai.onnx.ml';
  const nodes = [ensemble, node('Cast', ['label'], ['output_label'], { to: 7 })];
  if (zipmap) {
    const zip = node('ZipMap', ['probabilities'], ['output_probability'], { classlabels_int64s: [...FOREST.classes] });
    zip.domain = 'ai.onnx.ml';
    nodes.push(zip);
  } else {
    nodes.push(node('Identity', ['probabilities'], ['output_probability']));
  }
  return encodeModel({
    producer: 'skl2onnx',
    domains: { 'ai.onnx.ml': 1 },
    inputs: [valueInfo('input', 'float32', ['N', 4])],
    outputs: [valueInfo('output_label', 'int64', ['N']), zipmap ? seqMapInfo('output_probability') : valueInfo('output_probability', 'float32', ['N', 3])],
    initializers: [],
    nodes,
  });
}

/** A gradient-boosted regressor as skl2onnx writes it: `input` float32 [N, 4] → `variable` float32 [N, 1]. */
export function forestRegressor(): Uint8Array {
  const t = trees(FOREST.trees);
  const leaves = t.modes.flatMap((m, i) => (m === 'LEAF' ? [i] : []));
  const ensemble = node('TreeEnsembleRegressor', ['input'], ['variable'], {
    ...treeNodeAttrs(t),
    target_treeids: leaves.map((i) => t.treeIds[i]),
    target_nodeids: leaves.map((i) => t.nodeIds[i]),
    target_ids: leaves.map(() => 0),
    target_weights: { floats: leaves.map((i) => Math.round(Math.cos(i) * 1000) / 100) },
    n_targets: 1,
    aggregate_function: 'SUM',
    base_values: { floats: [0.5] },
    post_transform: 'NONE',
  });
  ensemble.domain = 'ai.onnx.ml';
  return encodeModel({
    producer: 'skl2onnx',
    domains: { 'ai.onnx.ml': 1 },
    inputs: [valueInfo('input', 'float32', ['N', 4])],
    outputs: [valueInfo('variable', 'float32', ['N', 1])],
    initializers: [],
    nodes: [ensemble],
  });
}

/**
 * Quantized the QOperator way (as onnxruntime's static quantizer writes it): `image` float32
 * [1, 1, 8, 8] → QuantizeLinear (uint8) → QLinearConv (int8 weights) → QLinearMatMul (int8
 * weights) → DequantizeLinear → `scores` float32 [1, 3].
 */
export function qoperatorModel(): Uint8Array {
  const q = (name: string, scale: number, zp: number, type: 'u8' | 'i8' = 'u8') => [floatTensor(`${name}_scale`, [], [scale]), type === 'u8' ? uint8Tensor(`${name}_zp`, [], [zp]) : int8Tensor(`${name}_zp`, [], [zp])];
  return encodeModel({
    producer: 'onnx.quantize',
    inputs: [valueInfo('image', 'float32', [1, 1, 8, 8])],
    outputs: [valueInfo('scores', 'float32', [1, 3])],
    initializers: [
      ...q('x', 1 / 64, 128),
      ...q('w1', 0.02, 0, 'i8'),
      int8Tensor('W1', [4, 1, 3, 3], w(36, 1, 1).map((v) => Math.round(v * 100))),
      ...q('c1', 0.05, 128),
      ...q('w2', 0.01, 0, 'i8'),
      int8Tensor('W2', [256, 3], w(768, 2, 1).map((v) => Math.round(v * 120))),
      ...q('y', 0.1, 128),
      int64Tensor('flat', [2], [1, 256]),
    ],
    nodes: [
      node('QuantizeLinear', ['image', 'x_scale', 'x_zp'], ['xq']),
      node('QLinearConv', ['xq', 'x_scale', 'x_zp', 'W1', 'w1_scale', 'w1_zp', 'c1_scale', 'c1_zp'], ['c1q'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
      node('Reshape', ['c1q', 'flat'], ['c1f']),
      node('QLinearMatMul', ['c1f', 'c1_scale', 'c1_zp', 'W2', 'w2_scale', 'w2_zp', 'y_scale', 'y_zp'], ['yq']),
      node('DequantizeLinear', ['yq', 'y_scale', 'y_zp'], ['scores']),
    ],
  });
}

/** Quantized the QDQ way: int8 weights behind DequantizeLinear, activations through Q → DQ: `x` [N, 16] → `y` [N, 3]. */
export function qdqModel(): Uint8Array {
  return encodeModel({
    producer: 'onnx.quantize',
    inputs: [valueInfo('x', 'float32', ['N', 16])],
    outputs: [valueInfo('y', 'float32', ['N', 3])],
    initializers: [
      floatTensor('x_scale', [], [0.02]),
      uint8Tensor('x_zp', [], [128]),
      int8Tensor('W', [16, 3], w(48, 3, 1).map((v) => Math.round(v * 127))),
      floatTensor('W_scale', [], [0.005]),
      int8Tensor('W_zp', [], [0]),
      floatTensor('b', [3], [0.1, -0.2, 0.05]),
    ],
    nodes: [
      node('QuantizeLinear', ['x', 'x_scale', 'x_zp'], ['xq']),
      node('DequantizeLinear', ['xq', 'x_scale', 'x_zp'], ['xdq']),
      node('DequantizeLinear', ['W', 'W_scale', 'W_zp'], ['Wf']),
      node('MatMul', ['xdq', 'Wf'], ['mm']),
      node('Add', ['mm', 'b'], ['y']),
    ],
  });
}

/** A small CNN over `channels` channels; `nhwc` takes [N, 16, 16, C] (TensorFlow converters) and transposes inside. */
export function imageModel(layout: 'NCHW' | 'NHWC', channels: 1 | 3): Uint8Array {
  const input = layout === 'NHWC' ? valueInfo('image', 'float32', ['N', 16, 16, channels]) : valueInfo('image', 'float32', ['N', channels, 16, 16]);
  const nodes = [
    node('Conv', [layout === 'NHWC' ? 'nchw' : 'image', 'W1', 'B1'], ['c1'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
    node('Relu', ['c1'], ['r1']),
    node('GlobalAveragePool', ['r1'], ['g1']),
    node('Flatten', ['g1'], ['f1'], { axis: 1 }),
    node('Gemm', ['f1', 'W2', 'B2'], ['logits'], { transB: 1 }),
    node('Softmax', ['logits'], ['probs'], { axis: 1 }),
  ];
  if (layout === 'NHWC') nodes.unshift(node('Transpose', ['image'], ['nchw'], { perm: [0, 3, 1, 2] }));
  return encodeModel({
    inputs: [input],
    outputs: [valueInfo('probs', 'float32', ['N', 4])],
    initializers: [floatTensor('W1', [8, channels, 3, 3], w(8 * channels * 9, 1)), floatTensor('B1', [8], w(8, 2, 0.1)), floatTensor('W2', [4, 8], w(32, 3, 1)), floatTensor('B2', [4], [0.1, -0.1, 0.2, 0])],
    nodes,
  });
}

/** float16 in and out, as fp16 exports write it: `x` float16 [N, 8] → `y` float16 [N, 3]. */
export function fp16Model(): Uint8Array {
  const half = (name: string, dims: number[], data: number[]) => ({ name, dataType: 10, dims, rawData: new Uint8Array(toFloat16Bits(data).buffer) });
  return encodeModel({
    inputs: [valueInfo('x', 'float16', ['N', 8])],
    outputs: [valueInfo('y', 'float16', ['N', 3])],
    initializers: [half('W', [8, 3], w(24, 5, 0.5)), half('b', [3], [0.25, -0.5, 0.125])],
    nodes: [node('MatMul', ['x', 'W'], ['mm']), node('Add', ['mm', 'b'], ['pre']), node('Tanh', ['pre'], ['y'])],
  });
}

/**
 * Control flow with the weights inside the branches: `x` float32 [N, 8] → If (sum of x > 0) then
 * x·W_then + b_then else x·W_else, each branch's weights its own initializers → `y` [N, 3].
 */
export function ifModel(): Uint8Array {
  const branch = (name: string, seed: number): GraphProto => ({
    name,
    node: [node('MatMul', ['x', `W_${name}`], [`mm_${name}`]), node('Add', [`mm_${name}`, `b_${name}`], [`y_${name}`])],
    initializer: [floatTensor(`W_${name}`, [8, 3], w(24, seed, 0.5)), floatTensor(`b_${name}`, [3], w(3, seed + 1, 0.2))],
    output: [valueInfo(`y_${name}`, 'float32', ['N', 3])],
  });
  return encodeModel({
    inputs: [valueInfo('x', 'float32', ['N', 8])],
    outputs: [valueInfo('y', 'float32', ['N', 3])],
    initializers: [floatTensor('zero', [], [0])],
    nodes: [
      node('ReduceSum', ['x'], ['total'], { keepdims: 0 }),
      node('Greater', ['total', 'zero'], ['positive']),
      node('If', ['positive'], ['y'], { then_branch: { graph: branch('then', 7) }, else_branch: { graph: branch('else', 9) } }),
    ],
  });
}

/** A graph with an op onnxruntime has no kernel for (a typo'd custom op in the default domain). */
export function unknownOpModel(): Uint8Array {
  const spec: ModelSpec = {
    inputs: [valueInfo('x', 'float32', ['N', 4])],
    outputs: [valueInfo('y', 'float32', ['N', 4])],
    initializers: [],
    nodes: [node('FancyActivation', ['x'], ['y'])],
  };
  return encodeModel(spec);
}

export { onnx };

/**
 * A model saved the way torch.onnx / `onnx.save(..., save_as_external_data=True)` saves it: `W` [8, 3]
 * and `b` [3] live in `model.onnx.data` (at offsets 0 and 128, aligned as onnx aligns large tensors),
 * the `.onnx` keeps only their location, offset and length. `inlined` is the same model self-contained.
 */
export function externalWeightsModel(): { model: Uint8Array; dataFile: string; data: Uint8Array; inlined: Uint8Array } {
  const W = Float32Array.from(w(24, 3.1, 0.5));
  const b = Float32Array.from(w(3, 4.3, 0.2));
  const data = new Uint8Array(128 + b.byteLength);
  data.set(new Uint8Array(W.buffer), 0);
  data.set(new Uint8Array(b.buffer), 128);
  const dataFile = 'model.onnx.data';
  const external = (name: string, dims: number[], offset: number, length: number) => ({
    name,
    dataType: 1,
    dims,
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: [
      { key: 'location', value: dataFile },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(length) },
    ],
  });
  const spec = (initializers: ModelSpec['initializers']): ModelSpec => ({
    inputs: [valueInfo('x', 'float32', ['N', 8])],
    outputs: [valueInfo('y', 'float32', ['N', 3])],
    initializers,
    nodes: [node('MatMul', ['x', 'W'], ['mm']), node('Add', ['mm', 'b'], ['y'])],
  });
  return {
    model: encodeModel(spec([external('W', [8, 3], 0, W.byteLength), external('b', [3], 128, b.byteLength)])),
    dataFile,
    data,
    inlined: encodeModel(spec([floatTensor('W', [8, 3], W), floatTensor('b', [3], b)])),
  };
}

/**
 * A `Loop` run a fixed 3 times (trip count an initializer) whose body holds its own weights:
 * h ← tanh(h·W_body + b_body), then y = h·W_out. Parameters: 1 (trip count) + 1 (cond) + 24 (W_out)
 * + 64 + 8 inside the body = 98.
 */
export function loopModel(): Uint8Array {
  const body: GraphProto = {
    name: 'body',
    input: [valueInfo('i', 'int64', []), { name: 'cond_in', type: { tensorType: { elemType: 9, shape: { dim: [] } } } }, valueInfo('h_in', 'float32', ['N', 8])],
    output: [{ name: 'cond_out', type: { tensorType: { elemType: 9, shape: { dim: [] } } } }, valueInfo('h_out', 'float32', ['N', 8])],
    initializer: [floatTensor('W_body', [8, 8], w(64, 5.7, 0.4)), floatTensor('b_body', [8], w(8, 6.1, 0.1))],
    node: [
      node('Identity', ['cond_in'], ['cond_out']),
      node('MatMul', ['h_in', 'W_body'], ['hw']),
      node('Add', ['hw', 'b_body'], ['hb']),
      node('Tanh', ['hb'], ['h_out']),
    ],
  };
  return encodeModel({
    inputs: [valueInfo('x', 'float32', ['N', 8])],
    outputs: [valueInfo('y', 'float32', ['N', 3])],
    initializers: [int64Tensor('trips', [], [3]), { name: 'keep_going', dataType: 9, dims: [], int32Data: [1] }, floatTensor('W_out', [8, 3], w(24, 8.3, 0.5))],
    nodes: [node('Loop', ['trips', 'keep_going', 'x'], ['h'], { body: { graph: body } }), node('MatMul', ['h', 'W_out'], ['y'])],
  });
}

/**
 * A YOLO-style detector with dynamic spatial dims: `images` float32 [1, 3, H, W] (pixels / 255) → an
 * 8×8 stride-8 Conv head, one anchor per cell (N = H/8 · W/8) → `boxes` [1, N, 4] cxcywh in input
 * pixels (centre = (cell + sigmoid(t)) · 8, size = 16 · exp(t)) and `scores` [1, N, 2] sigmoid class
 * scores: class 0 rises with a cell's brightness, class 1 with its redness. The grid comes from
 * CumSum over a ones map (a zero-weight Conv with bias 1), so it follows H and W.
 */
export const DETECTOR_STRIDE = 8;
export function detectorModel(): Uint8Array {
  const k = DETECTOR_STRIDE * DETECTOR_STRIDE;
  const head = new Array<number>(6 * 3 * k).fill(0);
  const at = (o: number, c: number, i: number) => (o * 3 + c) * k + i;
  for (let i = 0; i < k; i++) {
    for (let c = 0; c < 3; c++) {
      head[at(0, c, i)] = Math.sin((i + 1) * 1.7 + c) * 0.02; // tx
      head[at(1, c, i)] = Math.cos((i + 1) * 2.3 + c) * 0.02; // ty
      head[at(2, c, i)] = Math.sin((i + 1) * 0.9 + c) * 0.01; // tw
      head[at(3, c, i)] = Math.cos((i + 1) * 1.1 + c) * 0.01; // th
      head[at(4, c, i)] = 12 / (3 * k); // brightness
      head[at(5, c, i)] = (c === 0 ? 16 : -8) / k; // redness
    }
  }
  return encodeModel({
    inputs: [valueInfo('images', 'float32', [1, 3, 'H', 'W'])],
    outputs: [valueInfo('boxes', 'float32', [1, 'N', 4]), valueInfo('scores', 'float32', [1, 'N', 2])],
    initializers: [
      floatTensor('Wh', [6, 3, 8, 8], head),
      floatTensor('Bh', [6], [0, 0, 0, 0, -6, -4]),
      floatTensor('Wo', [2, 3, 8, 8], new Array(2 * 3 * k).fill(0)),
      floatTensor('Bo', [2], [1, 1]),
      floatTensor('maskX', [1, 2, 1, 1], [1, 0]),
      floatTensor('maskY', [1, 2, 1, 1], [0, 1]),
      floatTensor('one', [], [1]),
      floatTensor('stride', [], [DETECTOR_STRIDE]),
      floatTensor('base', [], [16]),
      int64Tensor('ax2', [], [2]),
      int64Tensor('ax3', [], [3]),
      int64Tensor('flat6', [3], [1, 6, -1]),
      int64Tensor('flat2', [3], [1, 2, -1]),
      int64Tensor('split', [3], [2, 2, 2]),
    ],
    nodes: [
      node('Conv', ['images', 'Wh', 'Bh'], ['feat'], { kernel_shape: [8, 8], strides: [8, 8] }),
      node('Reshape', ['feat', 'flat6'], ['feat3']),
      node('Transpose', ['feat3'], ['t'], { perm: [0, 2, 1] }),
      node('Split', ['t', 'split'], ['txy', 'twh', 'tcls'], { axis: 2 }),
      node('Sigmoid', ['tcls'], ['scores']),
      // The grid: (x + 1, y + 1) per cell, as [1, N, 2].
      node('Conv', ['images', 'Wo', 'Bo'], ['ones'], { kernel_shape: [8, 8], strides: [8, 8] }),
      node('CumSum', ['ones', 'ax3'], ['gx']),
      node('CumSum', ['ones', 'ax2'], ['gy']),
      node('Mul', ['gx', 'maskX'], ['gxm']),
      node('Mul', ['gy', 'maskY'], ['gym']),
      node('Add', ['gxm', 'gym'], ['grid4']),
      node('Reshape', ['grid4', 'flat2'], ['grid3']),
      node('Transpose', ['grid3'], ['grid'], { perm: [0, 2, 1] }),
      node('Sub', ['grid', 'one'], ['cell']),
      node('Sigmoid', ['txy'], ['sxy']),
      node('Add', ['cell', 'sxy'], ['cxy_cells']),
      node('Mul', ['cxy_cells', 'stride'], ['cxy']),
      node('Exp', ['twh'], ['ewh']),
      node('Mul', ['ewh', 'base'], ['wh']),
      node('Concat', ['cxy', 'wh'], ['boxes'], { axis: 2 }),
    ],
  });
}
