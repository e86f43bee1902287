/**
 * Structured pruning by output channel along simple producer → consumer chains (see prune.ts for the
 * rules): finding the chains, scoring channels by weight magnitude, and removing them from every tensor
 * the channel runs through. The calibrated variant (prune-calibrated.ts) reuses the same pieces.
 */
import type { NodeProto } from '../onnx/onnx-proto.ts';
import { OptimizeError } from './errors.ts';
import { dimsOf, elementCount, forgetValueInfo, intAttr, readFloat, resolveConst, scopes, usesByName, writeFloat, type ConstRef, type Model, type Scope, type Use } from './graph.ts';
import { PRUNABLE, label, type PruneReport, type PrunedChain, type SkippedLayer } from './prune.ts';

export interface Layer {
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
export interface Passthrough {
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

export interface Chain {
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
export function sliceAxis(data: Float32Array, dims: number[], axis: number, keep: number[]): { data: Float32Array; dims: number[] } {
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

export function sliceConst(ref: ConstRef, axis: number, keep: number[]): void {
  const w = readFloat(ref.tensor);
  if (typeof w === 'string') throw new Error(`${ref.name}: ${w}`);
  const s = sliceAxis(w, dimsOf(ref.tensor), axis, keep);
  writeFloat(ref.tensor, s.data, s.dims);
}

/** Σ of squares per index along `axis`, with `block` consecutive indices summed into one channel. */
export function channelNorms(data: Float32Array, dims: number[], axis: number, channels: number, block: number): Float64Array {
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

/**
 * Conv channels are kept in multiples of this (when the layer's count is one): onnxruntime's x86 NCHWc
 * conv kernels work on blocks of 8 (AVX2) or 16 (AVX-512) channels, and measured here a 16/32-channel CNN
 * pruned to 12/24 ran 18 % *slower* than unpruned while 8/16 ran 28 % faster. 16 suits AVX-512 hosts best.
 */
export const DEFAULT_CHANNEL_MULTIPLE = 8;

export interface ChainPlan {
  chain: Chain;
  /** Producer output channels. */
  channels: number;
  /** How many to remove. */
  remove: number;
}

/** Every prunable chain in the main graph (in node order), and why the other layers are not. */
export function discoverChains(model: Model, sparsity: number, channelMultiple = DEFAULT_CHANNEL_MULTIPLE): { plans: ChainPlan[]; skipped: SkippedLayer[] } {
  const all = scopes(model);
  const main = all[0];
  const uses = usesByName(all);
  const plans: ChainPlan[] = [];
  const skipped: SkippedLayer[] = [];
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
    const N = producer.dims[producer.outAxis];
    let remove = Math.min(N - 1, Math.round(sparsity * N));
    const m = producer.spatial ? channelMultiple : 1;
    if (m > 1 && N % m === 0) remove = N - Math.min(N, m * Math.max(1, Math.round((N - remove) / m)));
    if (remove <= 0) {
      skip(`${N} channels: ${Math.round(sparsity * 100)} % rounds to none${m > 1 ? ` (channels kept in multiples of ${m})` : ''}`);
      continue;
    }
    plans.push({ chain, channels: N, remove });
  }
  return { plans, skipped };
}

/** Current weights of a layer (re-read: an earlier chain may have resized them). */
export function weightsOf(layer: Layer): { w: Float32Array; dims: number[] } {
  const w = readFloat(layer.weight.tensor);
  if (typeof w === 'string') throw new Error(`${layer.weight.name}: ${w}`);
  return { w, dims: dimsOf(layer.weight.tensor) };
}

/** Magnitude score per producer channel: ‖incoming weights and bias‖₂ × ‖outgoing weights‖₂. */
function magnitudeScores(plan: ChainPlan): number[] {
  const { producer, consumer, block } = plan.chain;
  const N = plan.channels;
  const p = weightsOf(producer);
  const c = weightsOf(consumer);
  const incoming = channelNorms(p.w, p.dims, producer.outAxis, N, 1);
  if (producer.bias) {
    const b = readFloat(producer.bias.tensor) as Float32Array;
    if (b.length === N) for (let u = 0; u < N; u++) incoming[u] += b[u] ** 2;
  }
  const outgoing = channelNorms(c.w, c.dims, consumer.inAxis, N, block);
  return Array.from({ length: N }, (_, u) => Math.sqrt(incoming[u]) * Math.sqrt(outgoing[u]));
}

/** The channels to keep (ascending) and to remove: the `remove` lowest scores go. */
export function pickChannels(score: ArrayLike<number>, remove: number): { keep: number[]; removed: number[] } {
  const N = score.length;
  const order = Array.from({ length: N }, (_, u) => u).sort((a, b) => score[a] - score[b] || a - b);
  const removed = order.slice(0, remove).sort((a, b) => a - b);
  const gone = new Set(removed);
  return { keep: Array.from({ length: N }, (_, u) => u).filter((u) => !gone.has(u)), removed };
}

/** Removes every channel not in `keep` from the producer, the constants in between and the consumer's inputs. */
export function applyChain(model: Model, plan: ChainPlan, keep: number[], removed: number[]): PrunedChain {
  const { producer, consumer, through, block, tensors } = plan.chain;
  const N = plan.channels;
  const constParams = () => through.reduce((s, p) => s + p.consts.reduce((a, c) => a + elementCount(dimsOf(c.ref.tensor)), 0), 0);
  const before = paramsOf(producer) + paramsOf(consumer) + constParams();
  sliceConst(producer.weight, producer.outAxis, keep);
  if (producer.bias) {
    const bd = dimsOf(producer.bias.tensor);
    if (elementCount(bd) === N) sliceConst(producer.bias, bd.length - 1, keep);
    else if (elementCount(bd) !== 1) throw new OptimizeError('not_prunable', `bias of ${label(producer.node)} has shape [${bd}]`);
  }
  for (const p of through) for (const c of p.consts) sliceConst(c.ref, c.axis, keep);
  sliceConst(consumer.weight, consumer.inAxis, expandBlocks(keep, block));
  producer.dims = dimsOf(producer.weight.tensor);
  consumer.dims = dimsOf(consumer.weight.tensor);
  forgetValueInfo(model, tensors);
  return {
    producer: label(producer.node),
    consumer: label(consumer.node),
    through: through.map((p) => p.node.opType ?? ''),
    channelsBefore: N,
    channelsAfter: keep.length,
    removed,
    paramsRemoved: before - (paramsOf(producer) + paramsOf(consumer) + constParams()),
  };
}

/** Consumer input indices of the given channels (a channel spans `block` consecutive inputs after a Flatten). */
export function expandBlocks(channels: number[], block: number): number[] {
  return block === 1 ? channels : channels.flatMap((u) => Array.from({ length: block }, (_, b) => u * block + b));
}

export function structuredReport(sparsity: number, chains: PrunedChain[], skipped: SkippedLayer[], paramsBefore: Map<NodeProto, number>, method: PruneReport['method']): PruneReport {
  if (!chains.length) {
    throw new OptimizeError('not_prunable', `no producer → consumer chain to prune by channel (${skipped.map((s) => `${s.node}: ${s.reason}`).join('; ') || 'no MatMul, Gemm or Conv node'})`, { skipped });
  }
  const eligibleParams = [...paramsBefore.values()].reduce((a, b) => a + b, 0);
  const prunedParams = chains.reduce((s, c) => s + c.paramsRemoved, 0);
  return { structured: true, targetSparsity: sparsity, sparsity: prunedParams / eligibleParams, eligibleParams, prunedParams, weights: [], chains, skipped, method };
}

/** Params of every layer the plans touch, before any of them is applied. */
export function layerParams(plans: ChainPlan[]): Map<NodeProto, number> {
  const m = new Map<NodeProto, number>();
  for (const { chain } of plans) for (const l of [chain.producer, chain.consumer]) if (!m.has(l.node)) m.set(l.node, paramsOf(l));
  return m;
}

export function pruneStructured(model: Model, sparsity: number, channelMultiple?: number): PruneReport {
  const { plans, skipped } = discoverChains(model, sparsity, channelMultiple);
  const before = layerParams(plans);
  const chains = plans.map((plan) => {
    const { keep, removed } = pickChannels(magnitudeScores(plan), plan.remove);
    return applyChain(model, plan, keep, removed);
  });
  return structuredReport(sparsity, chains, skipped, before, 'magnitude');
}
