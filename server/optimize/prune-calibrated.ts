/**
 * Data-aware pruning: the same targets as prune.ts (a share of each weight tensor, or whole output
 * channels along simple chains), scored and repaired with activations measured on calibration samples.
 *
 * - Unstructured, layer by layer in graph order: score |w_of| · ‖x_f‖₂ (Wanda, Sun et al. 2023: a small
 *   weight on a loud input matters more than a big one on a quiet input) and drop the lowest `sparsity`
 *   share of each output's weights; then refit each output's surviving weights and its bias by ridge
 *   least squares so the layer reproduces what the *original* model computed there, from the inputs the
 *   already-pruned layers before it now produce (the idea of SparseGPT's reconstruction, solved exactly
 *   per output since these layers are small). Conv layers are fitted on sampled im2col patches. A layer
 *   whose problem is too large (> MAX_UNKNOWNS) only gets the mean-shift bias correction
 *   Σ_removed w · E[x]; layers inside subgraphs cannot be observed and fall back to plain magnitude.
 * - Structured: channel score = ‖the channel's activation at the consumer's input‖₂ × ‖the consumer's
 *   weights on it‖₂; the consumer is then refitted the same way from the kept channels (or gets the
 *   mean-shift correction), chain after chain with activations re-read each time.
 *
 * Calibration samples should not be the evaluation set, or the evaluation flatters the variant.
 */
import { mulberry32 } from '../../protocol/sketch/random.ts';
import type { NodeProto } from '../onnx/onnx-proto.ts';
import { captureTensors, ridgeSolve, type CalibrationData, type Captured } from './calibrate.ts';
import { OptimizeError } from './errors.ts';
import { FLOAT, Names, dimsOf, elementCount, encodeModel, floatAttr, intAttr, intsAttr, readFloat, resolveConst, tensor, usesByName, scopes, writeFloat, type ConstRef, type Model, type Scope } from './graph.ts';
import { applyChain, discoverChains, expandBlocks, layerParams, pickChannels, structuredReport, weightsOf } from './prune-chains.ts';
import { eligibleWeights, prunedWeight, unstructuredReport, zeroSmallest, type PruneOptions, type PruneReport, type PrunedChain, type PrunedWeight, type SkippedLayer } from './prune.ts';

/** Least-squares problems with more unknowns than this get the bias correction instead (Cholesky is cubic). */
export const MAX_UNKNOWNS = 1200;
/** Design rows used at most (calibration rows, or im2col patches for Conv). */
const MAX_ROWS = 8000;
// Chosen on the fixtures (bench): results barely move across 1e-6…1e-3 when rows are plentiful; with
// fewer than 8 rows per unknown (the flatten head: 1,025 unknowns, 512 samples) 0.1 generalised best.
const RIDGE_PLENTY = 1e-6;
const RIDGE_SCARCE = 1e-1;

export async function pruneModelCalibrated(model: Model, opts: PruneOptions, cal: CalibrationData): Promise<PruneReport> {
  if (!(opts.sparsity > 0 && opts.sparsity < 1)) throw new OptimizeError('invalid_options', `sparsity must be in (0, 1), got ${opts.sparsity}`);
  return opts.structured ? structured(model, opts.sparsity, cal, opts.channelMultiple) : unstructured(model, opts.sparsity, opts.minElements ?? 16, cal);
}

// ---------------------------------------------------------------- geometry and least squares

/** How a layer's weights map onto (output, input feature): a feature is an input column, or a (channel, tap) of a Conv. */
interface Geometry {
  conv: boolean;
  outputs: number;
  features: number;
  /** Input channel of a feature (dense: the feature itself). */
  channel: (f: number) => number;
  entry: (o: number, f: number) => number;
}

function geometry(n: NodeProto, dims: number[]): Geometry {
  if (n.opType === 'Conv') {
    const [M, C] = dims;
    const taps = elementCount(dims.slice(2));
    return { conv: true, outputs: M, features: C * taps, channel: (f) => Math.floor(f / taps), entry: (o, f) => o * C * taps + f };
  }
  const [r, c] = dims;
  if (n.opType === 'Gemm' && intAttr(n, 'transB', 0) === 1) return { conv: false, outputs: r, features: c, channel: (f) => f, entry: (o, f) => o * c + f };
  return { conv: false, outputs: c, features: r, channel: (f) => f, entry: (o, f) => f * c + o };
}

/** Sum of squares and mean of each input channel (last axis of a dense input, axis 1 of NCHW). */
function channelStats(x: Captured, conv: boolean, channels: number): { sq: Float64Array; mean: Float64Array } | undefined {
  const sq = new Float64Array(channels);
  const sum = new Float64Array(channels);
  const inner = conv ? elementCount(x.dims.slice(2)) : 1;
  if ((conv ? x.dims[1] : x.dims[x.dims.length - 1]) !== channels) return undefined;
  for (let i = 0; i < x.data.length; i++) {
    const c = Math.floor(i / inner) % channels;
    sq[c] += x.data[i] ** 2;
    sum[c] += x.data[i];
  }
  const count = x.data.length / channels;
  return { sq, mean: Float64Array.from(sum, (s) => s / count) };
}

/**
 * XᵀX and XᵀY over the design rows of a layer: feature vectors restricted to `features` (+ a trailing 1
 * for the intercept) against the original outputs. Undefined when the layer's geometry is not supported.
 */
function normalEquations(n: NodeProto, geo: Geometry, weightDims: number[], x: Captured, y: Captured, features: number[]): Normal | undefined {
  const k = features.length + 1;
  const N = geo.outputs;
  const G = new Float64Array(k * k);
  const R = new Float64Array(k * N);
  const row = new Float64Array(k);
  const target = new Float64Array(N);
  let rowsUsed = 0;
  const add = () => {
    rowsUsed++;
    for (let i = 0; i < k; i++) {
      const ri = row[i];
      if (ri === 0) continue;
      for (let j = 0; j <= i; j++) G[i * k + j] += ri * row[j];
      for (let o = 0; o < N; o++) R[i * N + o] += ri * target[o];
    }
  };
  row[k - 1] = 1;
  if (!geo.conv) {
    const K = x.dims[x.dims.length - 1];
    const rows = x.data.length / K;
    if (K !== geo.features || y.data.length !== rows * N) return undefined;
    const step = Math.max(1, Math.floor(rows / MAX_ROWS));
    for (let r = 0; r < rows; r += step) {
      for (let j = 0; j < features.length; j++) row[j] = x.data[r * K + features[j]];
      for (let o = 0; o < N; o++) target[o] = y.data[r * N + o];
      add();
    }
  } else {
    if (x.dims.length !== 4 || y.dims.length !== 4) return undefined;
    if (intAttr(n, 'group', 1) !== 1 || n.attribute?.some((a) => a.name === 'auto_pad' && a.s && new TextDecoder().decode(a.s) !== 'NOTSET')) return undefined;
    const [S, C, H, W] = x.dims;
    const [, M, OH, OW] = y.dims;
    const [kh, kw] = weightDims.length === 4 ? weightDims.slice(2) : [0, 0];
    if (!kh || M !== N || C * kh * kw !== geo.features) return undefined;
    const strides = intsAttr(n, 'strides') ?? [1, 1];
    const dil = intsAttr(n, 'dilations') ?? [1, 1];
    const pads = intsAttr(n, 'pads') ?? [0, 0, 0, 0];
    const total = S * OH * OW;
    // A random sample of output positions (seeded): a fixed stride can alias with the row width and see only one column.
    const rand = mulberry32(7);
    const count = Math.min(total, MAX_ROWS);
    for (let i = 0; i < count; i++) {
      const p = count === total ? i : Math.floor(rand() * total);
      const s = Math.floor(p / (OH * OW));
      const oh = Math.floor(p / OW) % OH;
      const ow = p % OW;
      for (let j = 0; j < features.length; j++) {
        const f = features[j];
        const c = Math.floor(f / (kh * kw));
        const a = Math.floor(f / kw) % kh;
        const b = f % kw;
        const ih = oh * strides[0] - pads[0] + a * dil[0];
        const iw = ow * strides[1] - pads[1] + b * dil[1];
        row[j] = ih >= 0 && ih < H && iw >= 0 && iw < W ? x.data[((s * C + c) * H + ih) * W + iw] : 0;
      }
      for (let o = 0; o < N; o++) target[o] = y.data[((s * M + o) * OH + oh) * OW + ow];
      add();
    }
  }
  for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) G[j * k + i] = G[i * k + j];
  return { G, R, k, N, rows: rowsUsed };
}

interface Normal {
  G: Float64Array;
  R: Float64Array;
  k: number;
  N: number;
  rows: number;
}

/**
 * Ridge strength relative to the mean diagonal: almost none when rows are plentiful (the fit should be
 * exact where it can be), firmer when unknowns approach the number of rows (no overfitting the samples).
 */
function ridgeFor(eq: Normal, unknowns: number): number {
  return eq.rows >= 8 * unknowns ? RIDGE_PLENTY : RIDGE_SCARCE;
}

/** Solves for the columns `outs` using only the rows/cols `subset` of G (the intercept index is k − 1). */
function solveSubset(eq: Normal, subset: number[], outs: number[]): Float64Array | undefined {
  const s = subset.length;
  const G = new Float64Array(s * s);
  const R = new Float64Array(s * outs.length);
  for (let i = 0; i < s; i++) {
    for (let j = 0; j < s; j++) G[i * s + j] = eq.G[subset[i] * eq.k + subset[j]];
    outs.forEach((o, c) => (R[i * outs.length + c] = eq.R[subset[i] * eq.N + o]));
  }
  return ridgeSolve(G, R, s, outs.length, ridgeFor(eq, s));
}

// ---------------------------------------------------------------- bias

/** Whether the layer's bias can be set per output (existing [N] constant, or none yet on Gemm/Conv/MatMul). */
function biasSlot(model: Model, scope: Scope, n: NodeProto, outputs: number, allowAdd: boolean): { ref?: ConstRef; beta: number } | undefined {
  if (n.opType === 'MatMul') return allowAdd ? { beta: 1 } : undefined;
  const beta = n.opType === 'Gemm' ? floatAttr(n, 'beta', 1) : 1;
  const name = n.input?.[2];
  if (!name) return beta !== 0 ? { beta } : undefined;
  const ref = resolveConst(scope, name);
  if (!ref || beta === 0 || (usesByName(scopes(model)).get(name) ?? []).length > 1) return undefined;
  return elementCount(dimsOf(ref.tensor)) === outputs ? { ref, beta } : undefined;
}

/** Writes the effective per-output bias into the slot (creating the constant, or an Add after a MatMul). */
function writeBias(scope: Scope, n: NodeProto, slot: { ref?: ConstRef; beta: number }, values: ArrayLike<number>, names: Names): ConstRef | undefined {
  const data = Float32Array.from(values, (v) => v / slot.beta);
  if (slot.ref) {
    writeFloat(slot.ref.tensor, data);
    return slot.ref;
  }
  const name = names.fresh(`${n.input?.[1]}.bias`);
  scope.graph.initializer = [...(scope.graph.initializer ?? []), tensor(name, FLOAT, [data.length], data)];
  if (n.opType === 'MatMul') {
    const y = n.output![0];
    const raw = names.fresh(`${y}.nobias`);
    n.output![0] = raw;
    const nodes = scope.graph.node!;
    nodes.splice(nodes.indexOf(n) + 1, 0, { opType: 'Add', input: [raw, name], output: [y] });
    return undefined;
  }
  (n.input as string[])[2] = name;
  return resolveConst(scope, name);
}

function currentBias(slot: { ref?: ConstRef; beta: number }, outputs: number): Float64Array {
  const out = new Float64Array(outputs);
  if (slot.ref) {
    const b = readFloat(slot.ref.tensor);
    if (typeof b !== 'string') for (let o = 0; o < outputs; o++) out[o] = b[o] * slot.beta;
  }
  return out;
}

// ---------------------------------------------------------------- unstructured

async function unstructured(model: Model, sparsity: number, minElements: number, cal: CalibrationData): Promise<PruneReport> {
  const { eligible, skipped } = eligibleWeights(model, minElements);
  const names = new Names(model);
  const weights: PrunedWeight[] = [];
  const observed = eligible.filter((e) => e.scope.path === 'main' && (e.node.opType !== 'Gemm' || intAttr(e.node, 'transA', 0) === 0));
  // Targets: each observed layer's output in the original model.
  const targets = observed.length ? await captureTensors(encodeModel(model), observed.map((e) => e.node.output![0]), cal) : new Map<string, Captured>();
  const outputNames = new Map(observed.map((e) => [e, e.node.output![0]]));
  for (const e of eligible) {
    if (!observed.includes(e)) {
      weights.push(zeroSmallest(e, sparsity));
      continue;
    }
    const dims = dimsOf(e.ref.tensor);
    const geo = geometry(e.node, dims);
    const inName = e.node.input![0];
    const x = (await captureTensors(encodeModel(model), [inName], cal)).get(inName)!;
    const channels = geo.conv ? dims[1] : geo.features;
    const stats = channelStats(x, geo.conv, channels);
    if (!stats) {
      weights.push(zeroSmallest(e, sparsity));
      continue;
    }
    const alpha = e.node.opType === 'Gemm' ? floatAttr(e.node, 'alpha', 1) : 1;
    const norm = Float64Array.from(stats.sq, Math.sqrt);
    const drop = Math.floor(sparsity * geo.features);
    const kept: number[][] = [];
    const delta = new Float64Array(geo.outputs);
    for (let o = 0; o < geo.outputs; o++) {
      const score = (f: number) => Math.abs(e.w[geo.entry(o, f)]) * norm[geo.channel(f)];
      const order = Array.from({ length: geo.features }, (_, f) => f).sort((a, b) => score(a) - score(b) || a - b);
      for (const f of order.slice(0, drop)) {
        delta[o] += alpha * e.w[geo.entry(o, f)] * stats.mean[geo.channel(f)];
        e.w[geo.entry(o, f)] = 0;
      }
      kept.push(order.slice(drop).sort((a, b) => a - b));
    }
    const slot = biasSlot(model, e.scope, e.node, geo.outputs, true);
    const all = Array.from({ length: geo.features }, (_, f) => f);
    const eq = slot && geo.features + 1 <= MAX_UNKNOWNS ? normalEquations(e.node, geo, dims, x, targets.get(outputNames.get(e)!)!, all) : undefined;
    let refitted = false;
    if (eq && slot) {
      const bias = new Float64Array(geo.outputs);
      const solved = kept.map((fs, o) => solveSubset(eq, [...fs, eq.k - 1], [o]));
      if (solved.every(Boolean)) {
        solved.forEach((B, o) => {
          kept[o].forEach((f, j) => (e.w[geo.entry(o, f)] = B![j] / alpha));
          bias[o] = B![kept[o].length];
        });
        writeBias(e.scope, e.node, slot, bias, names);
        refitted = true;
      }
    }
    if (!refitted) {
      if (slot) {
        const b = currentBias(slot, geo.outputs);
        writeBias(e.scope, e.node, slot, Float64Array.from(b, (v, o) => v + delta[o]), names);
      } else {
        skipped.push({ node: e.node.name || e.node.opType!, op: e.node.opType!, location: e.scope.path, reason: 'no per-output bias to carry the mean-shift correction' });
      }
    }
    writeFloat(e.ref.tensor, e.w);
    weights.push(prunedWeight(e));
  }
  return { ...unstructuredReport(sparsity, weights, skipped), method: 'calibrated' };
}

// ---------------------------------------------------------------- structured

async function structured(model: Model, sparsity: number, cal: CalibrationData, channelMultiple?: number): Promise<PruneReport> {
  const { plans, skipped } = discoverChains(model, sparsity, channelMultiple);
  const before = layerParams(plans);
  const names = new Names(model);
  const main = scopes(model)[0];
  const targets = plans.length ? await captureTensors(encodeModel(model), plans.map((p) => p.chain.consumer.node.output![0]), cal) : new Map<string, Captured>();
  const chains: PrunedChain[] = [];
  const notes: SkippedLayer[] = [];
  for (const [index, plan] of plans.entries()) {
    const { consumer, block } = plan.chain;
    const xName = consumer.node.input![0];
    const x = (await captureTensors(encodeModel(model), [xName], cal)).get(xName)!;
    const c = weightsOf(consumer);
    const geo = geometry(consumer.node, c.dims);
    const inChannels = c.dims[consumer.inAxis];
    const stats = channelStats(x, consumer.spatial, inChannels);
    if (!stats) throw new OptimizeError('not_prunable', `${xName}: activations do not match ${consumer.weight.name}`);
    const wsq = new Float64Array(inChannels);
    for (let o = 0; o < geo.outputs; o++) for (let f = 0; f < geo.features; f++) wsq[geo.channel(f)] += c.w[geo.entry(o, f)] ** 2;
    const score = Array.from({ length: plan.channels }, (_, u) => {
      let a = 0;
      let w = 0;
      for (let b = 0; b < block; b++) {
        a += stats.sq[u * block + b];
        w += wsq[u * block + b];
      }
      return Math.sqrt(a) * Math.sqrt(w);
    });
    const { keep, removed } = pickChannels(score, plan.remove);
    const keptChannels = expandBlocks(keep, block);
    const taps = geo.features / inChannels;
    const keptFeatures = keptChannels.flatMap((ch) => Array.from({ length: taps }, (_, t) => ch * taps + t));
    // No Add may be inserted after a MatMul here: a later chain may pass through this layer's output.
    const slot = biasSlot(model, main, consumer.node, geo.outputs, false);
    const alpha = consumer.node.opType === 'Gemm' ? floatAttr(consumer.node, 'alpha', 1) : 1;
    const eq = slot && keptFeatures.length + 1 <= MAX_UNKNOWNS ? normalEquations(consumer.node, geo, c.dims, x, targets.get(consumer.node.output![0])!, keptFeatures) : undefined;
    const B = eq ? solveSubset(eq, Array.from({ length: eq.k }, (_, i) => i), Array.from({ length: geo.outputs }, (_, o) => o)) : undefined;
    if (!B) {
      // Too large (or no bias slot) to refit: fold the removed inputs' mean contribution into the bias.
      const gone = new Set(removed.flatMap((u) => Array.from({ length: block }, (_, b) => u * block + b)));
      if (slot) {
        const bias = currentBias(slot, geo.outputs);
        for (let o = 0; o < geo.outputs; o++) for (let f = 0; f < geo.features; f++) if (gone.has(geo.channel(f))) bias[o] += alpha * c.w[geo.entry(o, f)] * stats.mean[geo.channel(f)];
        registerBias(writeBias(main, consumer.node, slot, bias, names), consumer.node, plans.slice(index + 1));
      } else {
        notes.push({ node: consumer.node.name || consumer.node.opType!, op: consumer.node.opType!, location: 'main', reason: 'consumer has no per-output bias: pruned without correction' });
      }
    }
    const chain = applyChain(model, plan, keep, removed);
    if (B && slot) {
      // Write the refitted weights in the sliced layout: features are renumbered 0…kept−1.
      const sliced = weightsOf(consumer);
      const g2 = geometry(consumer.node, sliced.dims);
      for (let o = 0; o < geo.outputs; o++) for (let j = 0; j < keptFeatures.length; j++) sliced.w[g2.entry(o, j)] = B[j * geo.outputs + o] / alpha;
      writeFloat(consumer.weight.tensor, sliced.w);
      registerBias(
        writeBias(main, consumer.node, slot, Array.from({ length: geo.outputs }, (_, o) => B[keptFeatures.length * geo.outputs + o]), names),
        consumer.node,
        plans.slice(index + 1),
      );
    }
    chains.push(chain);
  }
  return structuredReport(sparsity, chains, [...skipped, ...notes], before, 'calibrated');
}

/** A bias created on `node` must be sliced when a later chain prunes that node's output channels. */
function registerBias(ref: ConstRef | undefined, node: NodeProto, later: Array<{ chain: { producer: { node: NodeProto; bias?: ConstRef } } }>): void {
  if (!ref) return;
  for (const p of later) if (p.chain.producer.node === node) p.chain.producer.bias = ref;
}
