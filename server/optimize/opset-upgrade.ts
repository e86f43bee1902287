/**
 * Lifts a model's default-domain opset to the one a rewrite needs (QuantizeLinear needs 10,
 * DynamicQuantizeLinear 11, per-channel DequantizeLinear 13), as onnxruntime's quantizer does before
 * it inserts QDQ pairs. Each op of the graph (subgraphs included) must have a rule from the ONNX
 * version converter for the versions crossed:
 *
 * - same semantics, only the version changes (Conv, Relu, Gemm, MatMul, pooling, elementwise, …);
 * - an attribute that became an input: Slice starts/ends/axes/steps (10), Clip min/max and Pad
 *   pads/value (11), Squeeze/Unsqueeze axes, ReduceSum axes and Split split (13) move to int64/float
 *   initializers;
 * - attributes that went away: BatchNormalization `spatial` (9, only its default 1), Dropout `ratio`
 *   (12: inference ignores it);
 * - Softmax / LogSoftmax / Hardmax (13: from "flatten to 2-D at axis" to "along axis"): the op runs on
 *   Flatten(x, axis) along its last axis and is reshaped back to Shape(x), which is what it computed.
 *
 * Any other op is refused, naming it: a graph is never upgraded on a guess.
 *
 * @example
 * const r = upgradeOpset(model, 13); // { from: 9, to: 13, rewrites: ['Softmax_y: flatten/reshape (opset 13 semantics)'] }
 */
import type { GraphProto, NodeProto, TensorProto } from '../onnx/onnx-proto.ts';
import { floatTensor, int64Tensor, node as makeNode } from '../onnx/build.ts';
import { OptimizeError } from './errors.ts';
import { Names, opsetOf, scopes, type Model } from './graph.ts';

export interface OpsetUpgrade {
  from: number;
  to: number;
  /** What was rewritten beyond the version number, one line per node. */
  rewrites: string[];
}

/** Ops whose semantics do not change between opset 7 and 13 for the inputs a model gives them. */
const SAME = new Set([
  'Abs', 'Add', 'And', 'ArgMax', 'ArgMin', 'AveragePool', 'Cast', 'Ceil', 'Concat', 'Constant', 'ConstantOfShape', 'Conv', 'ConvTranspose', 'Cos',
  'DepthToSpace', 'Div', 'Elu', 'Equal', 'Erf', 'Exp', 'Expand', 'Flatten', 'Floor', 'Gather', 'Gemm', 'GlobalAveragePool', 'GlobalMaxPool', 'Greater',
  'HardSigmoid', 'Identity', 'InstanceNormalization', 'LeakyRelu', 'Less', 'Log', 'LRN', 'LSTM', 'GRU', 'RNN', 'MatMul', 'Max', 'MaxPool', 'Mean', 'Min', 'Mul', 'Neg',
  'Not', 'Or', 'PRelu', 'Pow', 'Reciprocal', 'ReduceL2', 'ReduceMax', 'ReduceMean', 'ReduceMin', 'ReduceProd', 'ReduceSumSquare', 'ReduceLogSumExp', 'Relu', 'Reshape', 'Selu', 'Shape',
  'Sigmoid', 'Sign', 'Sin', 'Size', 'Softplus', 'Softsign', 'SpaceToDepth', 'Sqrt', 'Sub', 'Sum', 'Tan', 'Tanh', 'Tile', 'Transpose', 'Where', 'Xor',
]);

/** Rewrites `model` in place to opset `target`; throws OptimizeError('unsupported_opset') naming the op that blocks it. */
export function upgradeOpset(model: Model, target: number): OpsetUpgrade {
  const from = opsetOf(model);
  if (from >= target) return { from, to: from, rewrites: [] };
  if (from < 7) throw new OptimizeError('unsupported_opset', `the model uses opset ${from}; upgrading is supported from opset 7`, { opset: from, required: target });
  const names = new Names(model);
  const rewrites: string[] = [];
  for (const scope of scopes(model)) {
    const g = scope.graph;
    const out: NodeProto[] = [];
    for (const n of g.node ?? []) {
      if (n.domain && n.domain !== 'ai.onnx') {
        out.push(n);
        continue;
      }
      out.push(...upgradeNode(n, g, from, target, names, rewrites));
    }
    g.node = out;
  }
  const imp = (model.opsetImport ?? []).find((x) => !x.domain || x.domain === 'ai.onnx')!;
  imp.version = target;
  return { from, to: target, rewrites };
}

function upgradeNode(n: NodeProto, g: GraphProto, from: number, to: number, names: Names, rewrites: string[]): NodeProto[] {
  const op = n.opType ?? '';
  const label = n.name || `${op}_${n.output?.[0] ?? ''}`;
  const crosses = (v: number) => from < v && to >= v;
  const take = (attr: string) => {
    const i = (n.attribute ?? []).findIndex((a) => a.name === attr);
    if (i < 0) return undefined;
    const [a] = n.attribute!.splice(i, 1);
    return a;
  };
  const addInit = (t: TensorProto) => {
    (g.initializer ??= []).push(t);
    return t.name!;
  };
  const ints = (a: { ints?: unknown[] | null } | undefined) => (a?.ints ?? []).map((v) => Number(v));
  if (SAME.has(op)) return [n];
  switch (op) {
    case 'BatchNormalization': {
      if (crosses(9)) {
        const spatial = take('spatial');
        if (spatial && Number(spatial.i) !== 1) refuse(op, from, to, 'spatial=0 has no equivalent after opset 9');
        if (spatial) rewrites.push(`${label}: dropped spatial=1 (opset 9)`);
      }
      return [n];
    }
    case 'Dropout': {
      if (crosses(12) && take('ratio')) rewrites.push(`${label}: dropped ratio (opset 12; inference ignores it)`);
      return [n];
    }
    case 'Slice': {
      if (!crosses(10)) return [n];
      const starts = ints(take('starts'));
      const ends = ints(take('ends'));
      const axes = take('axes');
      const inputs = [n.input![0], addInit(int64Tensor(names.fresh(`${label}_starts`), [starts.length], starts)), addInit(int64Tensor(names.fresh(`${label}_ends`), [ends.length], ends))];
      if (axes) inputs.push(addInit(int64Tensor(names.fresh(`${label}_axes`), [ints(axes).length], ints(axes))));
      n.input = inputs;
      rewrites.push(`${label}: starts/ends/axes attributes → inputs (opset 10)`);
      return [n];
    }
    case 'Clip': {
      if (!crosses(11)) return [n];
      const min = take('min');
      const max = take('max');
      n.input = [n.input![0], min ? addInit(floatTensor(names.fresh(`${label}_min`), [], [min.f ?? 0])) : '', ...(max ? [addInit(floatTensor(names.fresh(`${label}_max`), [], [max.f ?? 0]))] : [])];
      rewrites.push(`${label}: min/max attributes → inputs (opset 11)`);
      return [n];
    }
    case 'Pad': {
      if (!crosses(11)) return [n];
      const pads = ints(take('pads') ?? take('paddings'));
      const value = take('value');
      n.input = [n.input![0], addInit(int64Tensor(names.fresh(`${label}_pads`), [pads.length], pads)), ...(value ? [addInit(floatTensor(names.fresh(`${label}_value`), [], [value.f ?? 0]))] : [])];
      rewrites.push(`${label}: pads/value attributes → inputs (opset 11)`);
      return [n];
    }
    case 'Squeeze':
    case 'Unsqueeze':
    case 'ReduceSum':
    case 'Split': {
      if (!crosses(13)) return [n];
      const attr = op === 'Split' ? 'split' : 'axes';
      const a = take(attr);
      if (a) {
        const v = ints(a);
        n.input = [n.input![0], addInit(int64Tensor(names.fresh(`${label}_${attr}`), [v.length], v))];
        rewrites.push(`${label}: ${attr} attribute → input (opset 13)`);
      }
      return [n];
    }
    case 'Softmax':
    case 'LogSoftmax':
    case 'Hardmax': {
      if (!crosses(13)) return [n];
      // Before 13 the op flattened its input to 2-D at `axis` (default 1): say so explicitly.
      const axisAttr = take('axis');
      const axis = axisAttr ? Number(axisAttr.i) : 1;
      const x = n.input![0];
      const y = n.output![0];
      const flat = names.fresh(`${label}_flat`);
      const soft = names.fresh(`${label}_2d`);
      const shape = names.fresh(`${label}_shape`);
      rewrites.push(`${label}: runs on Flatten(axis=${axis}) and is reshaped back (opset 13 semantics)`);
      return [
        makeNode('Flatten', [x], [flat], { axis }, names.fresh(`${label}_flatten`)),
        { ...n, input: [flat], output: [soft], attribute: [...(n.attribute ?? []), { name: 'axis', type: 2, i: -1 }] } as NodeProto,
        makeNode('Shape', [x], [shape], {}, names.fresh(`${label}_shape_of`)),
        makeNode('Reshape', [soft, shape], [y], {}, names.fresh(`${label}_reshape`)),
      ];
    }
    default:
      refuse(op, from, to, 'no version-converter rule for it here');
  }
}

function refuse(op: string, from: number, to: number, why: string): never {
  throw new OptimizeError('unsupported_opset', `cannot upgrade the model from opset ${from} to ${to}: ${op} (${why}); re-export it at opset ≥ ${to}`, { opset: from, required: to, op });
}
