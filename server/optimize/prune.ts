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
 *   the reason, and a model with no chain at all is refused. Conv channels are kept in multiples of
 *   `channelMultiple` (default 8, see prune-chains.ts) because odd counts can make onnxruntime slower.
 *
 * Both score by weights alone here; with calibration samples, prune-calibrated.ts scores by activations
 * and refits what follows the pruned weights, which keeps far more of the parent's behaviour.
 *
 * @example
 * const { bytes, report } = prune(fp32Bytes, { sparsity: 0.5, structured: true });
 * report.chains[0]; // { producer: 'Gemm_hidden_pre', channelsBefore: 16, channelsAfter: 8, … }
 */
import type { NodeProto } from '../onnx/onnx-proto.ts';
import { OptimizeError } from './errors.ts';
import { pruneStructured } from './prune-chains.ts';
import { decodeModel, encodeModel, readFloat, resolveConst, scopes, usesByName, writeFloat, type ConstRef, type Model, type Scope } from './graph.ts';

export interface PruneOptions {
  /** Share in (0, 1): of the entries of each weight (unstructured) or of each producer's channels (structured). */
  sparsity: number;
  structured: boolean;
  /** Unstructured: weights with fewer elements are left alone. Default 16. */
  minElements?: number;
  /** Structured: keep Conv output channels in multiples of this (DEFAULT_CHANNEL_MULTIPLE = 8; 1 = exact share). */
  channelMultiple?: number;
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
  /**
   * How weights/channels were scored: `magnitude` (|w|, or channel norms) or `calibrated` (|w|·‖x‖ and
   * activation norms on calibration data, with bias correction / least-squares refit; see prune-calibrated.ts).
   */
  method: 'magnitude' | 'calibrated';
}

export const PRUNABLE = new Set(['MatMul', 'Gemm', 'Conv']);

export function prune(bytes: Uint8Array, opts: PruneOptions): { bytes: Uint8Array; report: PruneReport } {
  const model = decodeModel(bytes);
  const report = pruneModel(model, opts);
  return { bytes: encodeModel(model), report };
}

/** Prunes `model` in place. Throws OptimizeError when nothing can be pruned. */
export function pruneModel(model: Model, opts: PruneOptions): PruneReport {
  if (!(opts.sparsity > 0 && opts.sparsity < 1)) throw new OptimizeError('invalid_options', `sparsity must be in (0, 1), got ${opts.sparsity}`);
  return opts.structured ? pruneStructured(model, opts.sparsity, opts.channelMultiple) : pruneUnstructured(model, opts.sparsity, opts.minElements ?? 16);
}

export function label(n: NodeProto): string {
  return n.name || `${n.opType}(${n.output?.[0]})`;
}

// ---------------------------------------------------------------- unstructured

/** A weight unstructured pruning may zero, already read. */
export interface EligibleWeight {
  scope: Scope;
  node: NodeProto;
  ref: ConstRef;
  w: Float32Array;
}

/** MatMul/Gemm/Conv weights that are constant, float32, single-use and big enough; the rest with reasons. */
export function eligibleWeights(model: Model, minElements: number): { eligible: EligibleWeight[]; skipped: SkippedLayer[] } {
  const all = scopes(model);
  const uses = usesByName(all);
  const eligible: EligibleWeight[] = [];
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
      eligible.push({ scope, node: n, ref, w });
    }
  }
  return { eligible, skipped };
}

/** Zeroes the `sparsity` share of entries with the smallest |w| (ties by position) and writes the tensor back. */
export function zeroSmallest(e: EligibleWeight, sparsity: number): PrunedWeight {
  const { w } = e;
  const k = Math.floor(sparsity * w.length);
  const order = Array.from({ length: w.length }, (_, i) => i).sort((a, b) => Math.abs(w[a]) - Math.abs(w[b]) || a - b);
  for (let i = 0; i < k; i++) w[order[i]] = 0;
  writeFloat(e.ref.tensor, w);
  return prunedWeight(e);
}

export function prunedWeight(e: EligibleWeight): PrunedWeight {
  let zeros = 0;
  for (const v of e.w) if (v === 0) zeros++;
  return { node: label(e.node), op: e.node.opType!, weight: e.ref.name, location: e.scope.path, params: e.w.length, zeros };
}

export function unstructuredReport(sparsity: number, weights: PrunedWeight[], skipped: SkippedLayer[]): PruneReport {
  if (!weights.length) {
    throw new OptimizeError('not_prunable', `no weight could be pruned (${skipped.map((s) => `${s.node}: ${s.reason}`).join('; ') || 'no MatMul, Gemm or Conv node'})`, { skipped });
  }
  const eligibleParams = weights.reduce((s, w) => s + w.params, 0);
  const prunedParams = weights.reduce((s, w) => s + w.zeros, 0);
  return { structured: false, targetSparsity: sparsity, sparsity: prunedParams / eligibleParams, eligibleParams, prunedParams, weights, chains: [], skipped, method: 'magnitude' };
}

function pruneUnstructured(model: Model, sparsity: number, minElements: number): PruneReport {
  const { eligible, skipped } = eligibleWeights(model, minElements);
  return unstructuredReport(sparsity, eligible.map((e) => zeroSmallest(e, sparsity)), skipped);
}
