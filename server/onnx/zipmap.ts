/**
 * skl2onnx ends every classifier with ZipMap by default: the probabilities leave the graph as a
 * sequence of maps {class: probability}, which onnxruntime-node cannot return (it answers tensors
 * only). The registry rewrites such a graph at push so the same output name carries the tensor
 * ZipMap was given (float32 [N, classes]); the original file is kept and the rewrite recorded on the
 * version. Equivalent to exporting with `options={id(model): {'zipmap': False}}`.
 *
 * @example
 * const r = exposeZipMapTensors(bytes); // null when no graph output comes from ZipMap
 * if (r) store(r.bytes), record(r.rewrites);
 */
import { onnx, type ValueInfoProto } from './onnx-proto.ts';

export interface ZipMapRewrite {
  op: 'ZipMap';
  /** The graph output that was a sequence of maps and is now the tensor ZipMap read. */
  output: string;
  /** The tensor it now carries, e.g. `float32 [N, 3]`. */
  now: string;
  /** ZipMap's class labels, in column order of the tensor. */
  classLabels: Array<string | number>;
}

/** Replaces each ZipMap that feeds a graph output with an Identity of its input; null if there is none. */
export function exposeZipMapTensors(bytes: Uint8Array): { bytes: Uint8Array; rewrites: ZipMapRewrite[] } | null {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph;
  if (!graph) return null;
  const outputs = new Map((graph.output ?? []).map((o, i) => [o.name ?? '', i]));
  const rewrites: ZipMapRewrite[] = [];
  const batch = batchDim(graph.input?.[0]);
  graph.node = (graph.node ?? []).map((n) => {
    const out = n.output?.[0] ?? '';
    if (n.opType !== 'ZipMap' || !outputs.has(out)) return n;
    const attr = (name: string) => (n.attribute ?? []).find((a) => a.name === name);
    const labels: Array<string | number> = attr('classlabels_strings')?.strings?.length
      ? attr('classlabels_strings')!.strings!.map((s) => new TextDecoder().decode(s))
      : (attr('classlabels_int64s')?.ints ?? []).map((v) => Number(v));
    const shape = { dim: [batch, { dimValue: labels.length }] };
    graph.output![outputs.get(out)!] = { name: out, type: { tensorType: { elemType: 1, shape } } };
    rewrites.push({ op: 'ZipMap', output: out, now: `float32 [${batch.dimParam ?? batch.dimValue ?? '?'}, ${labels.length}]`, classLabels: labels });
    return onnx.NodeProto.create({ opType: 'Identity', input: [n.input![0]], output: [out], name: `${n.name || 'ZipMap'}_tensor` });
  });
  if (rewrites.length === 0) return null;
  return { bytes: onnx.ModelProto.encode(model).finish(), rewrites };
}

/** The first input's leading dim (the batch), so the rewritten output declares the same one. */
function batchDim(input: ValueInfoProto | undefined): { dimParam?: string; dimValue?: number } {
  const d = input?.type?.tensorType?.shape?.dim?.[0];
  if (d?.dimParam) return { dimParam: d.dimParam };
  if (d?.dimValue != null && Number(d.dimValue) > 0) return { dimValue: Number(d.dimValue) };
  return { dimParam: 'N' };
}
