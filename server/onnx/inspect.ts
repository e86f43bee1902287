/**
 * Reads an ONNX model's metadata: opset, producer, typed inputs/outputs (symbolic dims kept),
 * parameter count and initializer bytes. Weights are counted in graph initializers, in Constant
 * nodes and inside subgraphs (If/Loop/Scan), since real models keep them in all three places.
 *
 * @example
 * const info = inspectOnnx(readFileSync('model.onnx')); // throws InvalidOnnxError on non-ONNX bytes
 */
import { onnx, type ValueInfoProto } from './onnx-proto.ts';
import { fields, LEN, pushInts, text, VARINT, type WireField } from './wire.ts';

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

// Field numbers of onnx.proto3 (ONNX 1.10) that the inspection reads.
const MODEL = { irVersion: 1, producerName: 2, producerVersion: 3, graph: 7, opsetImport: 8 } as const;
const GRAPH = { node: 1, initializer: 5, input: 11, output: 12 } as const;
const NODE = { opType: 4, attribute: 5 } as const;
const ATTRIBUTE = { t: 5, g: 6, graphs: 11 } as const;
const TENSOR = { dims: 1, dataType: 2, name: 8, rawData: 9 } as const;

/**
 * Walks the protobuf wire format (wire.ts) and decodes only the small messages it reports (graph
 * inputs/outputs, opsets); weight payloads are stepped over, never copied or decoded.
 */
export function inspectOnnx(bytes: Uint8Array): OnnxInfo {
  try {
    return inspect(bytes);
  } catch (err) {
    if (err instanceof InvalidOnnxError) throw err;
    throw new InvalidOnnxError(`not a valid ONNX protobuf (${(err as Error).message}); the file may be truncated or not an ONNX model`);
  }
}

function inspect(buf: Uint8Array): OnnxInfo {
  let irVersion = 0;
  let producerName = '';
  let producerVersion = '';
  let graph: WireField | undefined;
  const opsets: Array<{ domain: string; version: number }> = [];
  for (const f of fields(buf, 0, buf.length)) {
    if (f.no === MODEL.irVersion && f.wire === VARINT) irVersion = f.value;
    else if (f.no === MODEL.producerName && f.wire === LEN) producerName = text(buf, f);
    else if (f.no === MODEL.producerVersion && f.wire === LEN) producerVersion = text(buf, f);
    else if (f.no === MODEL.graph && f.wire === LEN) graph = f;
    else if (f.no === MODEL.opsetImport && f.wire === LEN) {
      const o = onnx.OperatorSetIdProto.decode(buf.subarray(f.start, f.end));
      opsets.push({ domain: o.domain ?? '', version: Number(o.version) });
    }
  }
  // Protobuf is lenient: arbitrary bytes can read as an empty message, so check what an ONNX model must have.
  if (!graph || !(irVersion > 0)) throw new InvalidOnnxError('not an ONNX model: no ir_version or graph');
  const top: TopLevel = { inputs: [], outputs: [], initializerNames: new Set() };
  const weights = { params: 0, bytes: 0 };
  const opTypes = new Set<string>();
  const nodeCount = walkGraph(buf, graph, weights, opTypes, top);
  if (!top.outputs.length) throw new InvalidOnnxError('ONNX graph declares no outputs');
  const defaultOpset = opsets.find((o) => !o.domain || o.domain === 'ai.onnx');
  if (!defaultOpset) throw new InvalidOnnxError('ONNX model imports no default-domain opset');
  return {
    irVersion,
    opset: defaultOpset.version,
    producer: [producerName, producerVersion].filter(Boolean).join(' '),
    // Older exporters list initializers among graph inputs; those are weights, not inputs.
    inputs: top.inputs.filter((v) => !top.initializerNames.has(v.name ?? '')).map(tensorInfo),
    outputs: top.outputs.map(tensorInfo),
    paramCount: weights.params,
    initializerBytes: weights.bytes,
    nodeCount,
    opTypes: [...opTypes].sort(),
  };
}

/** What only the main graph reports (subgraphs have their own inputs and outputs). */
interface TopLevel {
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
  initializerNames: Set<string>;
}

function walkGraph(buf: Uint8Array, graph: WireField, acc: { params: number; bytes: number }, opTypes: Set<string>, top?: TopLevel): number {
  let nodes = 0;
  for (const f of fields(buf, graph.start, graph.end)) {
    if (f.wire !== LEN) continue;
    if (f.no === GRAPH.initializer) {
      const name = countTensor(buf, f, acc);
      top?.initializerNames.add(name);
    } else if (f.no === GRAPH.node) {
      nodes++;
      let opType = '';
      const attributes: WireField[] = [];
      for (const n of fields(buf, f.start, f.end)) {
        if (n.no === NODE.opType && n.wire === LEN) opType = text(buf, n);
        else if (n.no === NODE.attribute && n.wire === LEN) attributes.push(n);
      }
      if (opType) opTypes.add(opType);
      for (const a of attributes) {
        for (const af of fields(buf, a.start, a.end)) {
          if (af.wire !== LEN) continue;
          if (af.no === ATTRIBUTE.t && opType === 'Constant') countTensor(buf, af, acc);
          else if (af.no === ATTRIBUTE.g || af.no === ATTRIBUTE.graphs) nodes += walkGraph(buf, af, acc, opTypes);
        }
      }
    } else if (top && (f.no === GRAPH.input || f.no === GRAPH.output)) {
      (f.no === GRAPH.input ? top.inputs : top.outputs).push(onnx.ValueInfoProto.decode(buf.subarray(f.start, f.end)));
    }
  }
  return nodes;
}

/** Adds a TensorProto's element count and byte size to `acc`; returns its name. */
function countTensor(buf: Uint8Array, tensor: WireField, acc: { params: number; bytes: number }): string {
  const dims: number[] = [];
  let dataType = 0;
  let raw = 0;
  let name = '';
  for (const f of fields(buf, tensor.start, tensor.end)) {
    if (f.no === TENSOR.dims) pushInts(buf, f, dims);
    else if (f.no === TENSOR.dataType && f.wire === VARINT) dataType = f.value;
    else if (f.no === TENSOR.rawData && f.wire === LEN) raw = f.end - f.start;
    else if (f.no === TENSOR.name && f.wire === LEN) name = text(buf, f);
  }
  const elements = dims.reduce((n, d) => n * d, 1);
  acc.params += elements;
  acc.bytes += raw > 0 ? raw : elements * (DTYPE[dataType]?.bytes ?? 0);
  return name;
}

function tensorInfo(v: ValueInfoProto): TensorInfo {
  const tt = v.type?.tensorType;
  return {
    name: v.name ?? '',
    dtype: tt ? dtypeName(tt.elemType ?? 0) : 'unknown',
    shape: (tt?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : d.dimValue != null && Number(d.dimValue) > 0 ? Number(d.dimValue) : null)),
  };
}
