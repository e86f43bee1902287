/**
 * Magnitude pruning of MatMul / Gemm / Conv weights.
 *
 * - Unstructured: in every eligible weight tensor, the `sparsity` share of entries with the smallest
 *   |w| become 0 (per tensor, so a small layer is not emptied to spare a big one). Shapes stay; the
 *   file only shrinks once compressed (gzip, or a sparse-aware runtime), which is the point for OTA.
 * - Structured (by output channel): for a producer → consumer chain in the main graph — Gemm/MatMul →
 *   (Relu, per-channel Add/Mul, …) → Gemm/MatMul, or Conv → (Relu, BatchNormalization, pooling, …) →
 *   Conv, or Conv → … → Flatten → Gemm — the `sparsity` share of the producer's output channels with
 *   the lowest score is removed: the producer's weight rows and bias entries, the matching entries of
 *   per-channel constants in between, and the consumer's matching input columns. Tensors really get
 *   smaller and so does the compute. Score of channel u = ‖incoming weights and bias of u‖₂ ×
 *   ‖outgoing weights of u‖₂. A layer whose output is a graph output is never pruned; anything that is
 *   not a simple chain (branches, residual adds, reshapes, grouped convs, subgraphs) is skipped with
 *   the reason, and a model with no chain at all is refused.
 *
 * @example
 * const { bytes, report } = prune(fp32Bytes, { sparsity: 0.5, structured: true });
 * report.chains[0]; // { producer: 'Gemm_hidden_pre', channelsBefore: 16, channelsAfter: 8, … }
 */
import type { NodeProto } from '../onnx/onnx-proto.ts';
import { OptimizeError } from './errors.ts';
import {
  decodeModel,
  dimsOf,
  elementCount,
  encodeModel,
  forgetValueInfo,
  intAttr,
  readFloat,
  resolveConst,
  scopes,
  usesByName,
  writeFloat,
  type ConstRef,
  type Model,
  type Scope,
  type Use,
} from './graph.ts';

export interface PruneOptions {
  /** Share in (0, 1): of the entries of each weight (unstructured) or of each producer's channels (structured). */
  sparsity: number;
  structured: boolean;
  /** Unstructured: weights with fewer elements are left alone. Default 16. */
  minElements?: number;
}

export interface PrunedWeight {
  node: string;
  op: string;
  weight: string;
  location: string;
  params: number;
  zeros: number;
}

export interface PrunedChain {
  producer: string;
  consumer: string;
  /** Ops between them, in order. */
  through: string[];
  channelsBefore: number;
  channelsAfter: number;
  /** Output-channel indices removed from the producer. */
  removed: number[];
  paramsRemoved: number;
}

export interface SkippedLayer {
  node: string;
  op: string;
  location: string;
  reason: string;
}

export interface PruneReport {
  structured: boolean;
  targetSparsity: number;
  /**
   * Achieved parameter sparsity over the eligible weights: zeros / params (unstructured), or
   * params removed / params before (structured, counting weights and biases of the touched layers).
   */
  sparsity: number;
  eligibleParams: number;
  prunedParams: number;
  weights: PrunedWeight[];
  chains: PrunedChain[];
  skipped: SkippedLayer[];
}

const PRUNABLE = new Set(['MatMul', 'Gemm', 'Conv']);

export function prune(bytes: Uint8Array, opts: PruneOptions): { bytes: Uint8Array; report: PruneReport } {
  const model = decodeModel(bytes);
  const report = pruneModel(model, opts);
  return { bytes: encodeModel(model), report };
}

/** Prunes `model` in place. Throws OptimizeError when nothing can be pruned. */
export function pruneModel(model: Model, opts: PruneOptions): PruneReport {
  if (!(opts.sparsity > 0 && opts.sparsity < 1)) throw new OptimizeError('invalid_options', `sparsity must be in (0, 1), got ${opts.sparsity}`);
  return opts.structured ? pruneStructured(model, opts.sparsity) : pruneUnstructured(model, opts.sparsity, opts.minElements ?? 16);
}

function label(n: NodeProto): string {
  return n.name || `${n.opType}(${n.output?.[0]})`;
}

// ---------------------------------------------------------------- unstructured

function pruneUnstructured(model: Model, sparsity: number, minElements: number): PruneReport {
  const all = scopes(model);
  const uses = usesByName(all);
  const weights: PrunedWeight[] = [];
  const skipped: SkippedLayer[] = [];
  for (const scope of all) {
    for (const n of scope.graph.node ?? []) {
      if (!PRUNABLE.has(n.opType ?? '')) continue;
      const skip = (reason: string) => skipped.push({ node: label(n), op: n.opType!, location: scope.path, reason });
      const wName = n.input?.[1] ?? '';
      const ref = wName ? resolveConst(scope, wName) : undefined;
      if (!ref) {
        skip('weight is not a constant');
        continue;
      }
      if ((uses.get(wName) ?? []).length > 1) {
        skip(`weight is shared by ${(uses.get(wName) ?? []).length} uses`);
        continue;
      }
      const w = readFloat(ref.tensor);
      if (typeof w === 'string') {
        skip(w);
        continue;
      }
      if (w.length < minElements) {
        skip(`only ${w.length} elements (< ${minElements})`);
        continue;
      }
      const k = Math.floor(sparsity * w.length);
      // Smallest |w| first; ties broken by position so the result is deterministic.
      const order = Array.from({ length: w.length }, (_, i) => i).sort((a, b) => Math.abs(w[a]) - Math.abs(w[b]) || a - b);
      for (let i = 0; i < k; i++) w[order[i]] = 0;
      writeFloat(ref.tensor, w);
      let zeros = 0;
      for (const v of w) if (v === 0) zeros++;
      weights.push({ node: label(n), op: n.opType!, weight: wName, location: scope.path, params: w.length, zeros });
    }
  }
  if (!weights.length) {
    throw new OptimizeError('not_prunable', `no weight could be pruned (${skipped.map((s) => `${s.node}: ${s.reason}`).join('; ') || 'no MatMul, Gemm or Conv node'})`, { skipped });
  }
  const eligibleParams = weights.reduce((s, w) => s + w.params, 0);
  const prunedParams = weights.reduce((s, w) => s + w.zeros, 0);
  return { structured: false, targetSparsity: sparsity, sparsity: prunedParams / eligibleParams, eligibleParams, prunedParams, weights, chains: [], skipped };
}

// ---------------------------------------------------------------- structured

interface Layer {
  node: NodeProto;
  spatial: boolean;
  weight: ConstRef;
  dims: number[];
  /** Weight axis of output channels / of input channels. */
  outAxis: number;
  inAxis: number;
  bias?: ConstRef;
}

/** Channel-wise op between producer and consumer, and the per-channel constants it carries. */
interface Passthrough {
  node: NodeProto;
  consts: Array<{ ref: ConstRef; axis: number }>;
}

const UNARY = new Set(['Relu', 'LeakyRelu', 'PRelu', 'Sigmoid', 'Tanh', 'Elu', 'Selu', 'Gelu', 'Softplus', 'HardSigmoid', 'HardSwish', 'Identity', 'Dropout', 'Clip', 'Mish', 'Erf', 'Abs', 'Neg']);
const POOL = new Set(['MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'LpPool']);
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div']);

function layerOf(scope: Scope, n: NodeProto, uses: Map<string, Use[]>): Layer | string {
  const op = n.opType;
  const wName = n.input?.[1] ?? '';
  const weight = wName ? resolveConst(scope, wName) : undefined;
  if (!weight) return 'weight is not a constant';
  if ((uses.get(wName) ?? []).length > 1) return 'weight is shared';
  if (weight.tensor.dataType !== 1) return 'weight is not float32';
  const dims = dimsOf(weight.tensor);
  let bias: ConstRef | undefined;
  const bName = op === 'Gemm' || op === 'Conv' ? n.input?.[2] : undefined;
  if (bName) {
    bias = resolveConst(scope, bName);
    if (!bias) return 'bias is not a constant';
    if ((uses.get(bName) ?? []).length > 1) return 'bias is shared';
  }
  if (op === 'Conv') {
    if (intAttr(n, 'group', 1) !== 1) return 'grouped/depthwise Conv';
    if (dims.length < 3) return `Conv weight rank ${dims.length}`;
    return { node: n, spatial: true, weight, dims, outAxis: 0, inAxis: 1, bias };
  }
  if (dims.length !== 2) return `weight rank ${dims.length}`;
  if (op === 'Gemm') {
    if (intAttr(n, 'transA', 0) !== 0) return 'Gemm with transA=1';
    const tb = intAttr(n, 'transB', 0) === 1;
    return { node: n, spatial: false, weight, dims, outAxis: tb ? 0 : 1, inAxis: tb ? 1 : 0, bias };
  }
  return { node: n, spatial: false, weight, dims, outAxis: 1, inAxis: 0 };
}

interface Chain {
  producer: Layer;
  consumer: Layer;
  through: Passthrough[];
  /** Consumer input features per producer channel (H·W after a Flatten, else 1). */
  block: number;
  /** Tensors whose shape changes. */
  tensors: string[];
}

/** Follows the producer's output to the next prunable layer, or says why it cannot. */
function findChain(main: Scope, producer: Layer, uses: Map<string, Use[]>): Chain | string {
  const N = producer.dims[producer.outAxis];
  const outputs = new Set((main.graph.output ?? []).map((o) => o.name));
  const through: Passthrough[] = [];
  const tensors: string[] = [];
  let spatial = producer.spatial;
  let flattened = false;
  let t = producer.node.output![0];
  for (let hops = 0; hops < 64; hops++) {
    tensors.push(t);
    if (outputs.has(t)) return `${t} is a graph output`;
    const us = uses.get(t) ?? [];
    if (us.length !== 1) return `${t} has ${us.length} consumers (not a simple chain)`;
    const u = us[0];
    if (u.scope !== main || !u.node) return `${t} is used inside a subgraph`;
    const q = u.node;
    const op = q.opType ?? '';
    const extraOutputsUsed = (q.output ?? []).slice(1).some((o) => o && (uses.get(o) ?? []).length > 0);
    if (UNARY.has(op) || (spatial && POOL.has(op))) {
      if (u.index !== 0) return `${t} is not the data input of ${op}`;
      if (extraOutputsUsed) return `${op} has a second output in use`;
      if (op === 'PRelu') {
        const slope = resolveConst(main, q.input?.[1] ?? '');
        const c = slope && perChannelAxis(dimsOf(slope.tensor), N, spatial, flattened);
        if (c === undefined || c === 'bad' || (slope && (uses.get(slope.name) ?? []).length > 1)) return 'PRelu slope is not a per-channel constant';
        through.push({ node: q, consts: c === null ? [] : [{ ref: slope!, axis: c }] });
      } else {
        through.push({ node: q, consts: [] });
      }
      t = q.output![0];
      continue;
    }
    if (BINARY.has(op)) {
      const other = q.input![1 - u.index];
      const ref = resolveConst(main, other);
      if (!ref) return `${op} with a non-constant operand`;
      if ((uses.get(other) ?? []).length > 1) return `${op} constant is shared`;
      const c = perChannelAxis(dimsOf(ref.tensor), N, spatial, flattened);
      if (c === 'bad') return `${op} constant of shape [${dimsOf(ref.tensor)}] is not per-channel`;
      through.push({ node: q, consts: c === null ? [] : [{ ref, axis: c }] });
      t = q.output![0];
      continue;
    }
    if (op === 'BatchNormalization' && spatial) {
      if (extraOutputsUsed) return 'BatchNormalization in training mode';
      const consts: Passthrough['consts'] = [];
      for (const name of (q.input ?? []).slice(1)) {
        const ref = resolveConst(main, name);
        if (!ref || (uses.get(name) ?? []).length > 1 || elementCount(dimsOf(ref.tensor)) !== N) return 'BatchNormalization parameters are not per-channel constants';
        consts.push({ ref, axis: 0 });
      }
      through.push({ node: q, consts });
      t = q.output![0];
      continue;
    }
    if (op === 'Flatten' && spatial) {
      if (intAttr(q, 'axis', 1) !== 1) return 'Flatten with axis ≠ 1';
      through.push({ node: q, consts: [] });
      spatial = false;
      flattened = true;
      t = q.output![0];
      continue;
    }
    if ((op === 'Gemm' || op === 'MatMul' || op === 'Conv') && u.index === 0) {
      const consumer = layerOf(main, q, uses);
      if (typeof consumer === 'string') return `consumer ${label(q)}: ${consumer}`;
      if (consumer.spatial !== spatial) return `${label(q)} does not match the producer's layout`;
      const K = consumer.dims[consumer.inAxis];
      const block = flattened ? K / N : 1;
      if (!Number.isInteger(block) || (!flattened && K !== N)) return `${label(q)} has ${K} inputs for ${N} channels`;
      return { producer, consumer, through, block, tensors };
    }
    return `${t} feeds ${op}, which structured pruning does not pass through`;
  }
  return 'chain too long';
}

/**
 * Which axis of a constant operand indexes channels: null for a broadcast scalar, 'bad' when it is
 * neither scalar nor per-channel. Channels are the last axis of a [.., N] activation, or axis −3 of NCHW.
 */
function perChannelAxis(dims: number[], N: number, spatial: boolean, flattened: boolean): number | null | 'bad' {
  if (elementCount(dims) === 1) return null;
  if (flattened) return 'bad';
  const fromEnd = spatial ? 3 : 1;
  const axis = dims.length - fromEnd;
  if (axis < 0 || dims[axis] !== N) return 'bad';
  return dims.every((d, i) => i === axis || d === 1) ? axis : 'bad';
}

/** Keeps `keep` (ascending indices) along `axis`. */
function sliceAxis(data: Float32Array, dims: number[], axis: number, keep: number[]): { data: Float32Array; dims: number[] } {
  const outer = elementCount(dims.slice(0, axis));
  const inner = elementCount(dims.slice(axis + 1));
  const size = dims[axis];
  const out = new Float32Array(outer * keep.length * inner);
  let o = 0;
  for (let a = 0; a < outer; a++) {
    for (const k of keep) {
      const from = (a * size + k) * inner;
      out.set(data.subarray(from, from + inner), o);
      o += inner;
    }
  }
  const nd = dims.slice();
  nd[axis] = keep.length;
  return { data: out, dims: nd };
}

function sliceConst(ref: ConstRef, axis: number, keep: number[]): void {
  const w = readFloat(ref.tensor);
  if (typeof w === 'string') throw new Error(`${ref.name}: ${w}`);
  const s = sliceAxis(w, dimsOf(ref.tensor), axis, keep);
  writeFloat(ref.tensor, s.data, s.dims);
}

/** Σ of squares per index along `axis`, with `block` consecutive indices summed into one channel. */
function channelNorms(data: Float32Array, dims: number[], axis: number, channels: number, block: number): Float64Array {
  const outer = elementCount(dims.slice(0, axis));
  const inner = elementCount(dims.slice(axis + 1));
  const size = dims[axis];
  const out = new Float64Array(channels);
  for (let a = 0; a < outer; a++) {
    for (let k = 0; k < size; k++) {
      const base = (a * size + k) * inner;
      let s = 0;
      for (let i = 0; i < inner; i++) s += data[base + i] ** 2;
      out[Math.floor(k / block)] += s;
    }
  }
  return out;
}

function paramsOf(layer: Layer): number {
  return elementCount(dimsOf(layer.weight.tensor)) + (layer.bias ? elementCount(dimsOf(layer.bias.tensor)) : 0);
}

function pruneStructured(model: Model, sparsity: number): PruneReport {
  const all = scopes(model);
  const main = all[0];
  const uses = usesByName(all);
  const chains: PrunedChain[] = [];
  const skipped: SkippedLayer[] = [];
  const touched = new Map<NodeProto, number>(); // layer → params before any pruning
  for (const scope of all.slice(1)) {
    for (const n of scope.graph.node ?? []) {
      if (PRUNABLE.has(n.opType ?? '')) skipped.push({ node: label(n), op: n.opType!, location: scope.path, reason: 'inside a subgraph (structured pruning rewrites the main graph only)' });
    }
  }
  for (const n of main.graph.node ?? []) {
    if (!PRUNABLE.has(n.opType ?? '')) continue;
    const skip = (reason: string) => skipped.push({ node: label(n), op: n.opType!, location: main.path, reason });
    const producer = layerOf(main, n, uses);
    if (typeof producer === 'string') {
      skip(producer);
      continue;
    }
    const chain = findChain(main, producer, uses);
    if (typeof chain === 'string') {
      skip(chain);
      continue;
    }
    const { consumer, block } = chain;
    const N = producer.dims[producer.outAxis];
    const remove = Math.min(N - 1, Math.round(sparsity * N));
    if (remove <= 0) {
      skip(`${N} channels: ${Math.round(sparsity * 100)} % rounds to none`);
      continue;
    }
    for (const l of [producer, consumer]) if (!touched.has(l.node)) touched.set(l.node, paramsOf(l));

    const pw = readFloat(producer.weight.tensor) as Float32Array;
    const cw = readFloat(consumer.weight.tensor) as Float32Array;
    const incoming = channelNorms(pw, producer.dims, producer.outAxis, N, 1);
    if (producer.bias) {
      const b = readFloat(producer.bias.tensor) as Float32Array;
      if (b.length === N) for (let u = 0; u < N; u++) incoming[u] += b[u] ** 2;
    }
    const outgoing = channelNorms(cw, consumer.dims, consumer.inAxis, N, block);
    const score = Array.from({ length: N }, (_, u) => Math.sqrt(incoming[u]) * Math.sqrt(outgoing[u]));
    const order = Array.from({ length: N }, (_, u) => u).sort((a, b) => score[a] - score[b] || a - b);
    const removed = order.slice(0, remove).sort((a, b) => a - b);
    const gone = new Set(removed);
    const keep = Array.from({ length: N }, (_, u) => u).filter((u) => !gone.has(u));
    const before = paramsOf(producer) + paramsOf(consumer) + chain.through.reduce((s, p) => s + p.consts.reduce((a, c) => a + elementCount(dimsOf(c.ref.tensor)), 0), 0);

    sliceConst(producer.weight, producer.outAxis, keep);
    if (producer.bias) {
      const bd = dimsOf(producer.bias.tensor);
      if (elementCount(bd) === N) sliceConst(producer.bias, bd.length - 1, keep);
      else if (elementCount(bd) !== 1) throw new OptimizeError('not_prunable', `bias of ${label(producer.node)} has shape [${bd}]`);
    }
    for (const p of chain.through) for (const c of p.consts) sliceConst(c.ref, c.axis, keep);
    const keepInputs = block === 1 ? keep : keep.flatMap((u) => Array.from({ length: block }, (_, b) => u * block + b));
    sliceConst(consumer.weight, consumer.inAxis, keepInputs);
    producer.dims = dimsOf(producer.weight.tensor);
    consumer.dims = dimsOf(consumer.weight.tensor);
    const after = paramsOf(producer) + paramsOf(consumer) + chain.through.reduce((s, p) => s + p.consts.reduce((a, c) => a + elementCount(dimsOf(c.ref.tensor)), 0), 0);
    forgetValueInfo(model, chain.tensors);
    chains.push({
      producer: label(producer.node),
      consumer: label(consumer.node),
      through: chain.through.map((p) => p.node.opType ?? ''),
      channelsBefore: N,
      channelsAfter: keep.length,
      removed,
      paramsRemoved: before - after,
    });
  }
  if (!chains.length) {
    throw new OptimizeError('not_prunable', `no producer → consumer chain to prune by channel (${skipped.map((s) => `${s.node}: ${s.reason}`).join('; ') || 'no MatMul, Gemm or Conv node'})`, { skipped });
  }
  const eligibleParams = [...touched.values()].reduce((a, b) => a + b, 0);
  const prunedParams = chains.reduce((s, c) => s + c.paramsRemoved, 0);
  return { structured: true, targetSparsity: sparsity, sparsity: prunedParams / eligibleParams, eligibleParams, prunedParams, weights: [], chains, skipped };
}
