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
  /** Files named by tensors stored as ONNX external data (weights in a side file next to the `.onnx`). */
  externalFiles: string[];
  /** Weight elements by element type (`{ float32: 1200, int8: 4800 }`), counted where paramCount counts. */
  weightTypes: Record<string, number>;
  /** Tree ensembles (ai.onnx.ml): their size is in node attributes, not in weights. */
  trees?: { trees: number; nodes: number; leaves: number };
  /** Set when the graph is already quantized; `format` says how, `ops` which quantized ops it runs. */
  quantization?: { format: 'QOperator' | 'QDQ'; ops: string[]; int8Params: number; share: number };
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
const TENSOR = { dims: 1, dataType: 2, name: 8, rawData: 9, externalData: 13 } as const;

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
  const weights: Weights = { params: 0, bytes: 0, byType: {}, trees: new Set(), treeNodes: 0, leaves: 0, ensembles: 0, externalFiles: new Set() };
  const opTypes = new Set<string>();
  const nodeCount = walkGraph(buf, graph, weights, opTypes, top);
  const ops = [...opTypes].sort();
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
    opTypes: ops,
    weightTypes: weights.byType,
    externalFiles: [...weights.externalFiles].sort(),
    ...(weights.treeNodes > 0 ? { trees: { trees: weights.trees.size, nodes: weights.treeNodes, leaves: weights.leaves } } : {}),
    ...quantizationOf(ops, weights),
  };
}

// Ops that run on integers (QOperator form, static or dynamic): a graph with them is already quantized.
const QOPERATOR_OPS = new Set(['QLinearConv', 'QLinearMatMul', 'QLinearAdd', 'QLinearMul', 'QLinearGemm', 'QGemm', 'QAttention', 'MatMulInteger', 'ConvInteger', 'DynamicQuantizeMatMul', 'MatMulIntegerToFloat', 'DynamicQuantizeLSTM', 'QLinearLeakyRelu', 'QLinearSigmoid', 'QLinearAveragePool', 'QLinearGlobalAveragePool', 'QLinearConcat']);

/** QOperator when integer ops run; QDQ when int8/uint8 weights go through DequantizeLinear. */
function quantizationOf(ops: string[], w: Weights): Pick<OnnxInfo, 'quantization'> {
  const int8Params = (w.byType.int8 ?? 0) + (w.byType.uint8 ?? 0);
  const qops = ops.filter((o) => QOPERATOR_OPS.has(o));
  const share = w.params > 0 ? int8Params / w.params : 0;
  if (qops.length > 0) return { quantization: { format: 'QOperator', ops: qops, int8Params, share } };
  // Zero points alone (scalars) do not make a model int8: the weights must be.
  if (ops.includes('DequantizeLinear') && int8Params > 16) return { quantization: { format: 'QDQ', ops: ['DequantizeLinear', ...(ops.includes('QuantizeLinear') ? ['QuantizeLinear'] : [])], int8Params, share } };
  return {};
}

/** What only the main graph reports (subgraphs have their own inputs and outputs). */
interface TopLevel {
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
  initializerNames: Set<string>;
}

interface Weights {
  params: number;
  bytes: number;
  byType: Record<string, number>;
  trees: Set<string>;
  treeNodes: number;
  leaves: number;
  ensembles: number;
  externalFiles: Set<string>;
}

const TREE_OPS = new Set(['TreeEnsembleClassifier', 'TreeEnsembleRegressor']);

function walkGraph(buf: Uint8Array, graph: WireField, acc: Weights, opTypes: Set<string>, top?: TopLevel): number {
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
      if (TREE_OPS.has(opType)) countTrees(buf, attributes, acc, acc.ensembles++);
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

/** Tree count (distinct `nodes_treeids` per ensemble), nodes (`nodes_modes`) and leaves (mode LEAF). */
function countTrees(buf: Uint8Array, attributes: WireField[], acc: Weights, ensemble: number): void {
  for (const a of attributes) {
    const attr = onnx.AttributeProto.decode(buf.subarray(a.start, a.end));
    if (attr.name === 'nodes_modes') {
      acc.treeNodes += attr.strings.length;
      for (const s of attr.strings) if (new TextDecoder().decode(s) === 'LEAF') acc.leaves++;
    } else if (attr.name === 'nodes_treeids') {
      for (const id of attr.ints) acc.trees.add(`${ensemble}:${Number(id)}`);
    }
  }
}

/** Adds a TensorProto's element count and byte size to `acc`; returns its name. */
function countTensor(buf: Uint8Array, tensor: WireField, acc: Weights): string {
  const dims: number[] = [];
  let dataType = 0;
  let raw = 0;
  let name = '';
  for (const f of fields(buf, tensor.start, tensor.end)) {
    if (f.no === TENSOR.dims) pushInts(buf, f, dims);
    else if (f.no === TENSOR.dataType && f.wire === VARINT) dataType = f.value;
    else if (f.no === TENSOR.rawData && f.wire === LEN) raw = f.end - f.start;
    else if (f.no === TENSOR.name && f.wire === LEN) name = text(buf, f);
    else if (f.no === TENSOR.externalData && f.wire === LEN) {
      const entry = onnx.StringStringEntryProto.decode(buf.subarray(f.start, f.end));
      if (entry.key === 'location' && entry.value) acc.externalFiles.add(entry.value);
    }
  }
  const elements = dims.reduce((n, d) => n * d, 1);
  acc.params += elements;
  const type = dtypeName(dataType);
  acc.byType[type] = (acc.byType[type] ?? 0) + elements;
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
