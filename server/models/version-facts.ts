// Facts about a version's file that do not fit a column of their own (issue 17): how its weights are
// typed, how big a tree ensemble is, whether it is already quantized, and what the registry rewrote
// at push. Stored as one JSON column so a new fact needs no migration.
import type { OnnxInfo } from '../onnx/inspect.ts';
import type { ZipMapRewrite } from '../onnx/zipmap.ts';

export interface VersionFacts {
  weightTypes: Record<string, number>;
  trees?: { trees: number; nodes: number; leaves: number };
  quantization?: { format: 'QOperator' | 'QDQ'; ops: string[]; int8Params: number; share: number };
  /** The pushed file was rewritten before registration; the original is kept under its hash. */
  imported?: { originalSha256: string; originalSize: number; rewrites: ZipMapRewrite[] };
  /** Weights stored as ONNX external data: the side files, by the name the model's tensors use (bundles ship them beside model.onnx). */
  externalData?: Array<{ path: string; sha256: string; size: number }>;
}

export function factsOf(info: OnnxInfo, imported?: VersionFacts['imported'], externalData: NonNullable<VersionFacts['externalData']> = []): VersionFacts {
  return {
    weightTypes: info.weightTypes,
    ...(info.trees ? { trees: info.trees } : {}),
    ...(info.quantization ? { quantization: info.quantization } : {}),
    ...(imported ? { imported } : {}),
    ...(externalData.length ? { externalData } : {}),
  };
}

/** `int8 (QOperator: QLinearConv, QLinearMatMul; 98% of weights)`, for refusals and listings. */
export function describeQuantization(q: NonNullable<VersionFacts['quantization']>): string {
  return `int8 (${q.format}: ${q.ops.join(', ')}; ${Math.round(q.share * 100)}% of weights)`;
}

/**
 * A version's size as a person reads it: weights for networks, nodes and leaves for tree ensembles
 * (whose size lives in node attributes, so "0 parameters" would mislead), and int8 when it already is.
 *
 * @example
 * describeSize({ paramCount: 0, facts: { weightTypes: {}, trees: { trees: 3, nodes: 21, leaves: 12 } } }) // '3 trees, 21 nodes, 12 leaves'
 */
export function describeSize(v: { paramCount: number; facts?: Record<string, unknown> | null }): string {
  const facts = (v.facts ?? null) as VersionFacts | null;
  const parts: string[] = [];
  if (facts?.trees) parts.push(`${facts.trees.trees} trees, ${facts.trees.nodes} nodes, ${facts.trees.leaves} leaves`);
  if (v.paramCount > 0 || !facts?.trees) parts.push(`${v.paramCount} parameters`);
  if (facts?.quantization) parts.push(describeQuantization(facts.quantization));
  return parts.join(', ');
}
