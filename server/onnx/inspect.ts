/**
 * Reads an ONNX model's metadata: opset, producer, typed inputs/outputs (symbolic dims kept),
 * parameter count and initializer bytes. Weights are counted in graph initializers, in Constant
 * nodes and inside subgraphs (If/Loop/Scan), since real models keep them in all three places.
 *
 * @example
 * const info = inspectOnnx(readFileSync('model.onnx')); // throws InvalidOnnxError on non-ONNX bytes
 */
import { onnx, type GraphProto, type TensorProto, type ValueInfoProto } from './onnx-proto.ts';

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: Array<number | string | null>;
}

export interface OnnxInfo {
  irVersion: number;
  opset: number;
  producer: string;
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  paramCount: number;
  initializerBytes: number;
  nodeCount: number;
  opTypes: string[];
}

export class InvalidOnnxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidOnnxError';
  }
}

const DTYPE: Record<number, { name: string; bytes: number }> = {
  1: { name: 'float32', bytes: 4 },
  2: { name: 'uint8', bytes: 1 },
  3: { name: 'int8', bytes: 1 },
  4: { name: 'uint16', bytes: 2 },
  5: { name: 'int16', bytes: 2 },
  6: { name: 'int32', bytes: 4 },
  7: { name: 'int64', bytes: 8 },
  8: { name: 'string', bytes: 0 },
  9: { name: 'bool', bytes: 1 },
  10: { name: 'float16', bytes: 2 },
  11: { name: 'float64', bytes: 8 },
  12: { name: 'uint32', bytes: 4 },
  13: { name: 'uint64', bytes: 8 },
  16: { name: 'bfloat16', bytes: 2 },
};

export function dtypeName(elemType: number): string {
  return DTYPE[elemType]?.name ?? `type${elemType}`;
}

export function inspectOnnx(bytes: Uint8Array): OnnxInfo {
  let model: InstanceType<typeof onnx.ModelProto>;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new InvalidOnnxError(`not a valid ONNX protobuf (${(err as Error).message}); the file may be truncated or not an ONNX model`);
  }
  // Protobuf decoding is lenient: arbitrary bytes can decode into an empty message, so check what an ONNX model must have.
  const irVersion = Number(model.irVersion);
  if (!model.graph || !(irVersion > 0)) throw new InvalidOnnxError('not an ONNX model: no ir_version or graph');
  const graph = model.graph;
  if (!graph.output?.length) throw new InvalidOnnxError('ONNX graph declares no outputs');
  const defaultOpset = model.opsetImport.find((o) => !o.domain || o.domain === 'ai.onnx');
  if (!defaultOpset) throw new InvalidOnnxError('ONNX model imports no default-domain opset');

  const initNames = new Set((graph.initializer ?? []).map((t) => t.name));
  const weights = { params: 0, bytes: 0 };
  const opTypes = new Set<string>();
  const nodeCount = walkGraph(graph, weights, opTypes);
  return {
    irVersion,
    opset: Number(defaultOpset.version),
    producer: [model.producerName, model.producerVersion].filter(Boolean).join(' '),
    // Older exporters list initializers among graph inputs; those are weights, not inputs.
    inputs: (graph.input ?? []).filter((v) => !initNames.has(v.name ?? '')).map(tensorInfo),
    outputs: graph.output.map(tensorInfo),
    paramCount: weights.params,
    initializerBytes: weights.bytes,
    nodeCount,
    opTypes: [...opTypes].sort(),
  };
}

function walkGraph(graph: GraphProto, acc: { params: number; bytes: number }, opTypes: Set<string>): number {
  let nodes = 0;
  for (const t of graph.initializer ?? []) countTensor(t, acc);
  for (const n of graph.node ?? []) {
    nodes++;
    if (n.opType) opTypes.add(n.opType);
    for (const a of n.attribute ?? []) {
      if (n.opType === 'Constant' && a.t) countTensor(a.t, acc);
      if (a.g) nodes += walkGraph(a.g, acc, opTypes);
      for (const g of a.graphs ?? []) nodes += walkGraph(g, acc, opTypes);
    }
  }
  return nodes;
}

function countTensor(t: TensorProto, acc: { params: number; bytes: number }): void {
  const elements = (t.dims ?? []).reduce<number>((n, d) => n * Number(d), 1);
  acc.params += elements;
  const raw = t.rawData?.length ?? 0;
  acc.bytes += raw > 0 ? raw : elements * (DTYPE[t.dataType ?? 0]?.bytes ?? 0);
}

function tensorInfo(v: ValueInfoProto): TensorInfo {
  const tt = v.type?.tensorType;
  return {
    name: v.name ?? '',
    dtype: tt ? dtypeName(tt.elemType ?? 0) : 'unknown',
    shape: (tt?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : d.dimValue != null && Number(d.dimValue) > 0 ? Number(d.dimValue) : null)),
  };
}
