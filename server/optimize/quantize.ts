/**
 * Symmetric int8 quantization of MatMul / Gemm / Conv weights, in one of two forms:
 *
 * - `qdq` (weight-only): the weight becomes an int8 initializer + scale (+ zero point 0) feeding a
 *   DequantizeLinear whose output replaces the weight. Works for every op, ~4× smaller weights; the
 *   compute stays float32. onnxruntime does NOT constant-fold DequantizeLinear by default (its QDQ
 *   fusions want the nodes kept) — measured here: with graphOptimizationLevel 'all' alone the DQ runs
 *   on every call; only the session config `session.disable_quant_qdq = "1"` folds it back into a
 *   float32 initializer at load. Use {@link QDQ_SESSION_OPTIONS} when running a qdq variant.
 * - `integer` (dynamic quantization): DynamicQuantizeLinear on the activation, MatMulInteger (or
 *   ConvInteger) on int8 weights, then Cast + Mul by activation scale × weight scale(s) and the bias
 *   Add. This is the pattern onnxruntime fuses into its DynamicQuantizeMatMul kernel.
 *
 * Scales are per tensor or per output channel (Gemm: axis 0 with transB=1, 1 otherwise; MatMul: the
 * last axis; Conv: axis 0). Weights are found in graph initializers, Constant nodes and subgraphs;
 * anything that cannot be rewritten is left as it was and listed in `skipped` with the reason.
 *
 * @example
 * const { bytes, report } = quantize(fp32Bytes, { form: 'qdq', perChannel: true });
 * report.quantizedParamShare; // e.g. 0.97
 */
import type { NodeProto, TensorProto } from '../onnx/onnx-proto.ts';
import { OptimizeError } from './errors.ts';
import {
  FLOAT,
  INT8,
  Names,
  decodeModel,
  dimsOf,
  elementCount,
  encodeModel,
  floatAttr,
  floatParamCount,
  forgetValueInfo,
  intAttr,
  opsetOf,
  readFloat,
  resolveConst,
  scopes,
  tensor,
  usesByName,
  type ConstRef,
  type Model,
  type Scope,
  type Use,
} from './graph.ts';

export type QuantForm = 'qdq' | 'integer';

export interface QuantizeOptions {
  form: QuantForm;
  /** One scale per output channel instead of one per tensor. Needs opset ≥ 13 in the qdq form. */
  perChannel: boolean;
  /** Weights with fewer elements stay float32: their scale, zero point and extra node cost more than they save. Default 16. */
  minElements?: number;
  /**
   * What the integer form does with Conv: `integer` (ConvInteger) or `qdq` (weight-only, float compute).
   * Default `qdq`: measured here, onnxruntime's ConvInteger (im2col, no NCHWc kernels) is slower than its
   * float Conv, while folded QDQ is as fast as fp32 and as small as ConvInteger.
   */
  conv?: 'integer' | 'qdq';
}

/** Session options a runtime should use for a qdq variant so the DequantizeLinear nodes fold at load. */
export const QDQ_SESSION_OPTIONS = {
  graphOptimizationLevel: 'all',
  extra: { session: { disable_quant_qdq: '1' } },
} as const;

export interface QuantizedWeight {
  node: string;
  op: string;
  weight: string;
  location: string;
  /** `integer` or `qdq` (a Conv in the integer form may still use qdq, see `conv`). */
  form: QuantForm;
  perChannel: boolean;
  params: number;
  /** Largest |w − dequantized w| over the tensor, and max|w| for scale. */
  maxAbsError: number;
  maxAbs: number;
}

export interface SkippedWeight {
  node: string;
  op: string;
  weight?: string;
  location: string;
  params: number;
  reason: string;
}

export interface QuantizeReport {
  form: QuantForm;
  perChannel: boolean;
  /** float32 parameters before quantization, everywhere in the model. */
  totalParams: number;
  quantizedParams: number;
  /** quantizedParams / totalParams: the ~4× size reduction only holds when this is close to 1. */
  quantizedParamShare: number;
  layers: QuantizedWeight[];
  skipped: SkippedWeight[];
  notes: string[];
}

const QUANTIZABLE = new Set(['MatMul', 'Gemm', 'Conv']);
const QMAX = 127; // symmetric: [-127, 127], zero point 0
/**
 * Weights feeding integer compute (MatMulInteger / ConvInteger) use 7 bits, [-63, 63] (onnxruntime's
 * `reduce_range`): on x86 CPUs without VNNI, onnxruntime multiplies u8 activations by s8 weights with
 * vpmaddubsw, which sums pairs into saturating int16 — 2·255·127 overflows, 2·255·63 does not. Measured
 * on an AVX2-only EPYC: full-range weights put node 3.3 away from onnxruntime-web (which computes exactly)
 * and cost 2 points of accuracy; with 7 bits both runtimes agree.
 */
const QMAX_INTEGER = 63;

export function quantize(bytes: Uint8Array, opts: QuantizeOptions): { bytes: Uint8Array; report: QuantizeReport } {
  const model = decodeModel(bytes);
  const report = quantizeModel(model, opts);
  return { bytes: encodeModel(model), report };
}

/** Quantizes `model` in place. Throws OptimizeError when nothing can be quantized. */
export function quantizeModel(model: Model, opts: QuantizeOptions): QuantizeReport {
  if (opts.form !== 'qdq' && opts.form !== 'integer') throw new OptimizeError('invalid_options', `unknown quantization form ${String(opts.form)}`);
  const opset = opsetOf(model);
  const need = opts.form === 'integer' ? 11 : opts.perChannel ? 13 : 10;
  if (opset < need) {
    throw new OptimizeError(
      'unsupported_opset',
      `${opts.form}${opts.perChannel ? ' per-channel' : ''} quantization needs opset ≥ ${need} (DequantizeLinear axis / DynamicQuantizeLinear); the model uses opset ${opset}`,
      { opset, required: need },
    );
  }
  const minElements = opts.minElements ?? 16;
  const convForm = opts.form === 'integer' ? (opts.conv ?? 'qdq') : 'qdq';
  const totalParams = floatParamCount(model);
  const all = scopes(model);
  const original = new Set(all.flatMap((sc) => sc.graph.initializer ?? []));
  const uses = usesByName(all);
  const names = new Names(model);
  const layers: QuantizedWeight[] = [];
  const skipped: SkippedWeight[] = [];
  const notes: string[] = [];
  const retired = new Map<string, ConstRef>();
  const handledWeights = new Set<TensorProto>();

  for (const scope of all) {
    // Activations already quantized in this scope (integer form): one DynamicQuantizeLinear per activation.
    const dql = new Map<string, [string, string, string]>();
    const out: NodeProto[] = [];
    for (const n of [...(scope.graph.node ?? [])]) {
      if (!QUANTIZABLE.has(n.opType ?? '')) {
        out.push(n);
        continue;
      }
      const label = n.name || `${n.opType}(${n.output?.[0]})`;
      const wName = n.input?.[1] ?? '';
      const ref = wName ? resolveConst(scope, wName) : undefined;
      const skip = (reason: string, params = 0) => {
        skipped.push({ node: label, op: n.opType!, weight: wName || undefined, location: scope.path, params, reason });
        out.push(n);
      };
      if (!ref) {
        skip('weight is not a constant (computed or a graph input)');
        continue;
      }
      handledWeights.add(ref.tensor);
      const dims = dimsOf(ref.tensor);
      const params = elementCount(dims);
      const w = readFloat(ref.tensor);
      if (typeof w === 'string') {
        skip(w, ref.tensor.dataType === FLOAT ? params : 0);
        continue;
      }
      const reason = ineligible(n, dims, uses.get(wName) ?? [], params, minElements, opts.form === 'integer' && n.opType !== 'Conv' ? 'integer' : n.opType === 'Conv' ? convForm : 'qdq', scope);
      if (reason) {
        skip(reason, params);
        continue;
      }
      const useInteger = opts.form === 'integer' && (n.opType !== 'Conv' || convForm === 'integer');
      const axis = channelAxis(n, dims);
      const q = quantizeSymmetric(w, dims, opts.perChannel ? axis : null, useInteger ? QMAX_INTEGER : QMAX);
      const entry: QuantizedWeight = {
        node: label,
        op: n.opType!,
        weight: wName,
        location: scope.path,
        form: useInteger ? 'integer' : 'qdq',
        perChannel: opts.perChannel,
        params,
        maxAbsError: q.maxAbsError,
        maxAbs: q.maxAbs,
      };
      if (useInteger) {
        const nodes = integerRewrite(n, scope, ref, dims, q, opts.perChannel, names, dql, uses, retired);
        if (typeof nodes === 'string') {
          skip(nodes, params);
          continue;
        }
        out.push(...nodes);
      } else {
        out.push(qdqRewrite(n, scope, wName, dims, q, opts.perChannel ? axis : null, names), n);
      }
      retire(ref, retired);
      if (ref.alsoGraphInput) notes.push(`${wName} was also a graph input (overridable weight); it is no longer one`);
      layers.push(entry);
    }
    scope.graph.node = out;
  }
  // Removed only now: removing a Constant node edits a node list the loop above is rebuilding.
  for (const ref of retired.values()) ref.remove();
  forgetValueInfo(model, retired.keys());

  // Float tensors that no quantizable op consumes (embeddings, norms, LSTM weights…) count against the share: list the big ones.
  for (const scope of all) {
    for (const t of scope.graph.initializer ?? []) {
      if (t.dataType !== FLOAT || handledWeights.has(t) || !original.has(t)) continue;
      const params = elementCount(dimsOf(t));
      if (params < minElements) continue;
      const tUses = uses.get(t.name ?? '') ?? [];
      const consumers = [...new Set(tUses.map((u) => u.node?.opType ?? 'graph output'))];
      const biasOnly = tUses.length > 0 && tUses.every((u) => u.index === 2 && QUANTIZABLE.has(u.node?.opType ?? ''));
      skipped.push({
        node: '-',
        op: consumers.join(',') || 'unused',
        weight: t.name ?? '',
        location: scope.path,
        params,
        reason: biasOnly ? `bias of ${consumers.join(', ')}: kept float32 (weight-only int8 leaves biases alone)` : `consumed by ${consumers.join(', ') || 'nothing'}, which this optimizer does not quantize`,
      });
    }
  }

  const quantizedParams = layers.reduce((s, l) => s + l.params, 0);
  if (quantizedParams === 0) {
    const why = skipped.length ? skipped.map((s) => `${s.node}: ${s.reason}`).join('; ') : 'the graph has no MatMul, Gemm or Conv node';
    throw new OptimizeError('not_quantizable', `no weight could be quantized (${why})`, { skipped });
  }
  return {
    form: opts.form,
    perChannel: opts.perChannel,
    totalParams,
    quantizedParams,
    quantizedParamShare: totalParams ? quantizedParams / totalParams : 0,
    layers,
    skipped,
    notes,
  };
}

function retire(ref: ConstRef, retired: Map<string, ConstRef>) {
  retired.set(ref.name, ref);
}

/** Why this node's weight cannot be quantized in the chosen form, or undefined when it can. */
function ineligible(n: NodeProto, dims: number[], uses: Use[], params: number, minElements: number, form: QuantForm, scope: Scope): string | undefined {
  if (uses.length > 1) return `weight is shared by ${uses.length} uses (left float32 so the other consumers are unchanged)`;
  if (params < minElements) return `only ${params} elements (< ${minElements}): scale and zero point would cost more than they save`;
  const op = n.opType;
  if (op === 'MatMul' || op === 'Gemm') {
    if (dims.length !== 2) return `weight has rank ${dims.length}; only 2-D MatMul/Gemm weights are rewritten`;
    if (op === 'Gemm' && form === 'integer' && intAttr(n, 'transA', 0) !== 0) return 'Gemm with transA=1 has no MatMulInteger form';
  }
  if (op === 'Conv') {
    if (dims.length < 3) return `Conv weight has rank ${dims.length}`;
    if (form === 'integer') {
      const b = n.input?.[2];
      if (b && !resolveConst(scope, b)) return 'Conv bias is not a constant (ConvInteger rewrite needs it reshaped)';
    }
  }
  return undefined;
}

/** The weight axis that indexes output channels. */
function channelAxis(n: NodeProto, dims: number[]): number {
  if (n.opType === 'Gemm') return intAttr(n, 'transB', 0) === 1 ? 0 : 1;
  if (n.opType === 'MatMul') return dims.length - 1;
  return 0; // Conv: [M, C/group, kH, kW]
}

export interface Quantized {
  q: Int8Array;
  /** One scale (per tensor) or one per channel along the chosen axis. */
  scales: Float32Array;
  maxAbsError: number;
  maxAbs: number;
}

/** Symmetric int8: scale = max|w| / qmax (127, or 63 for integer compute) over the tensor or over each slice along `axis`. */
export function quantizeSymmetric(w: Float32Array, dims: number[], axis: number | null, qmax = QMAX): Quantized {
  const channels = axis === null ? 1 : dims[axis];
  const inner = axis === null ? 1 : elementCount(dims.slice(axis + 1));
  const channelOf = (i: number) => (axis === null ? 0 : Math.floor(i / inner) % channels);
  const maxAbs = new Float64Array(channels);
  for (let i = 0; i < w.length; i++) {
    const c = channelOf(i);
    const a = Math.abs(w[i]);
    if (a > maxAbs[c]) maxAbs[c] = a;
  }
  // A channel of zeros gets scale 1 (any positive value dequantizes its zeros exactly).
  const scales = Float32Array.from(maxAbs, (m) => (m > 0 ? m / qmax : 1));
  const q = new Int8Array(w.length);
  let maxAbsError = 0;
  for (let i = 0; i < w.length; i++) {
    const s = scales[channelOf(i)];
    const v = Math.max(-qmax, Math.min(qmax, Math.round(w[i] / s)));
    q[i] = v;
    const err = Math.abs(w[i] - v * s);
    if (err > maxAbsError) maxAbsError = err;
  }
  return { q, scales, maxAbsError, maxAbs: Math.max(0, ...maxAbs) };
}

function qdqRewrite(n: NodeProto, scope: Scope, wName: string, dims: number[], q: Quantized, axis: number | null, names: Names): NodeProto {
  const qName = names.fresh(`${wName}.int8`);
  const sName = names.fresh(`${wName}.scale`);
  const out = names.fresh(`${wName}.dq`);
  // No zero-point input: it defaults to 0, which is what symmetric quantization needs, and saves a tensor per weight.
  scope.graph.initializer = [...(scope.graph.initializer ?? []), tensor(qName, INT8, dims, q.q), tensor(sName, FLOAT, axis === null ? [] : [dims[axis]], q.scales)];
  n.input![1] = out;
  return { opType: 'DequantizeLinear', input: [qName, sName], output: [out], attribute: axis === null ? [] : [{ name: 'axis', type: 2 /* INT */, i: axis }] };
}

/** The integer-compute replacement of `n` (a list of nodes), or a reason it cannot be rewritten. */
function integerRewrite(
  n: NodeProto,
  scope: Scope,
  ref: ConstRef,
  dims: number[],
  q: Quantized,
  perChannel: boolean,
  names: Names,
  dql: Map<string, [string, string, string]>,
  uses: Map<string, Use[]>,
  retired: Map<string, ConstRef>,
): NodeProto[] | string {
  const op = n.opType!;
  const x = n.input![0];
  const y = n.output![0];
  const wName = ref.name;
  const inits: TensorProto[] = [];
  const nodes: NodeProto[] = [];
  // Added nodes stay unnamed (names are optional in ONNX): on a small model their names would cost more than the weights save.
  const mk = (opType: string, input: string[], output: string[], attribute: NodeProto['attribute'] = []): NodeProto => ({ opType, input, output, attribute });

  let xq = dql.get(x);
  if (!xq) {
    xq = [names.fresh(`${x}.u8`), names.fresh(`${x}.scale`), names.fresh(`${x}.zp`)];
    nodes.push(mk('DynamicQuantizeLinear', [x], [...xq]));
  }

  let qWeight: Int8Array;
  let wDims: number[];
  let scale: Float32Array = q.scales;
  let scaleDims: number[];
  let bias: { name: string; beta: number } | undefined;
  const qwName = names.fresh(`${wName}.int8`);
  const accName = names.fresh(`${y}.i32`);
  if (op === 'Conv') {
    qWeight = q.q;
    wDims = dims;
    // ConvInteger output is [N, M, *spatial]: a per-channel scale broadcasts as [M, 1, …].
    scaleDims = perChannel ? [dims[0], ...dims.slice(2).map(() => 1)] : [];
    const convAttrs = (n.attribute ?? []).filter((a) => ['auto_pad', 'dilations', 'group', 'kernel_shape', 'pads', 'strides'].includes(a.name ?? ''));
    nodes.push(mk('ConvInteger', [xq[0], qwName, xq[2]], [accName], convAttrs));
    const b = n.input?.[2];
    if (b) bias = { name: b, beta: 1 };
  } else {
    const [r, c] = dims;
    const transposed = op === 'Gemm' && intAttr(n, 'transB', 0) === 1;
    if (transposed) {
      // MatMulInteger wants B as [K, N]; the Gemm weight is [N, K].
      qWeight = new Int8Array(r * c);
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) qWeight[j * r + i] = q.q[i * c + j];
      wDims = [c, r];
    } else {
      qWeight = q.q;
      wDims = dims;
    }
    scaleDims = perChannel ? [wDims[1]] : [];
    if (op === 'Gemm') {
      const alpha = floatAttr(n, 'alpha', 1);
      if (alpha !== 1) scale = Float32Array.from(scale, (s) => s * alpha);
      const c3 = n.input?.[2];
      if (c3) bias = { name: c3, beta: floatAttr(n, 'beta', 1) };
    }
    nodes.push(mk('MatMulInteger', [xq[0], qwName, xq[2]], [accName]));
  }
  inits.push(tensor(qwName, INT8, wDims, qWeight));
  const sName = names.fresh(`${wName}.scale`);
  inits.push(tensor(sName, FLOAT, scaleDims, scale));

  // Bias: Conv's [M] becomes [M, 1, …]; Gemm's C is scaled by beta. Both are folded into new constants when constant.
  let biasInput: string | undefined;
  if (bias) {
    const bref = resolveConst(scope, bias.name);
    const bUses = uses.get(bias.name) ?? [];
    if (bref && bUses.length === 1) {
      const bv = readFloat(bref.tensor);
      if (typeof bv === 'string') return `bias: ${bv}`;
      const bdims = dimsOf(bref.tensor);
      const newDims = op === 'Conv' ? [bv.length, ...dims.slice(2).map(() => 1)] : bdims;
      biasInput = names.fresh(`${bias.name}.folded`);
      inits.push(tensor(biasInput, FLOAT, newDims, bias.beta === 1 ? bv : Float32Array.from(bv, (v) => v * bias!.beta)));
      retire(bref, retired);
    } else if (op === 'Conv') {
      return 'Conv bias is shared or not constant';
    } else if (bias.beta !== 1) {
      const betaName = names.fresh(`${y}.beta`);
      inits.push(tensor(betaName, FLOAT, [], Float32Array.of(bias.beta)));
      biasInput = names.fresh(`${bias.name}.scaled`);
      nodes.push(mk('Mul', [bias.name, betaName], [biasInput]));
    } else {
      biasInput = bias.name;
    }
  }

  if (!dql.has(x)) dql.set(x, xq);
  const accFloat = names.fresh(`${y}.f32`);
  const scaleProduct = names.fresh(`${y}.rescale`);
  nodes.push(mk('Cast', [accName], [accFloat], [{ name: 'to', type: 2, i: FLOAT }]));
  nodes.push(mk('Mul', [xq[1], sName], [scaleProduct]));
  if (biasInput) {
    const scaled = names.fresh(`${y}.nobias`);
    nodes.push(mk('Mul', [accFloat, scaleProduct], [scaled]));
    nodes.push(mk('Add', [scaled, biasInput], [y]));
  } else {
    nodes.push(mk('Mul', [accFloat, scaleProduct], [y]));
  }
  scope.graph.initializer = [...(scope.graph.initializer ?? []), ...inits];
  return nodes;
}
