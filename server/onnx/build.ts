/**
 * Small helpers for building ONNX graphs in TypeScript (demo models, optimizer rewrites, test fixtures).
 *
 * @example
 * const bytes = encodeModel({
 *   inputs: [valueInfo('x', 'float32', ['batch', 8])],
 *   outputs: [valueInfo('y', 'float32', ['batch', 3])],
 *   initializers: [floatTensor('W', [8, 3], weights), floatTensor('b', [3], bias)],
 *   nodes: [node('Gemm', ['x', 'W', 'b'], ['y'])],
 * });
 */
import { onnx, type GraphProto, type NodeProto, type TensorProto, type ValueInfoProto } from './onnx-proto.ts';

export const ELEM = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  string: 8,
  bool: 9,
  float16: 10,
} as const;
export type ElemName = keyof typeof ELEM;

export function floatTensor(name: string, dims: number[], data: ArrayLike<number>): TensorProto {
  return { name, dataType: ELEM.float32, dims, rawData: toBytes(Float32Array.from(data)) };
}

export function int8Tensor(name: string, dims: number[], data: ArrayLike<number>): TensorProto {
  return { name, dataType: ELEM.int8, dims, rawData: toBytes(Int8Array.from(data)) };
}

export function uint8Tensor(name: string, dims: number[], data: ArrayLike<number>): TensorProto {
  return { name, dataType: ELEM.uint8, dims, rawData: toBytes(Uint8Array.from(data)) };
}

export function int64Tensor(name: string, dims: number[], data: ArrayLike<number>): TensorProto {
  return { name, dataType: ELEM.int64, dims, rawData: toBytes(BigInt64Array.from(Array.from(data, (v) => BigInt(v)))) };
}

function toBytes(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
}

/** A graph input/output; string dims are symbolic (e.g. 'batch'). */
export function valueInfo(name: string, elem: ElemName, dims: Array<number | string>): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[elem],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** `{ floats }` forces a FLOATS attribute (a list of whole numbers would otherwise encode as INTS); `{ graph }` is a subgraph (If/Loop bodies). */
type AttrValue = number | string | number[] | string[] | TensorProto | { floats: number[] } | { graph: GraphProto };

export function node(opType: string, inputs: string[], outputs: string[], attrs: Record<string, AttrValue> = {}, name?: string): NodeProto {
  const attribute = Object.entries(attrs).map(([key, value]) => attr(key, value));
  return { opType, input: inputs, output: outputs, attribute, name: name ?? `${opType}_${outputs[0]}` };
}

function attr(name: string, value: AttrValue) {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value) && value.some((v) => typeof v === 'string')) return { name, type: T.STRINGS, strings: (value as string[]).map((v) => new TextEncoder().encode(v)) };
  if (Array.isArray(value)) {
    return value.every(Number.isInteger) ? { name, type: T.INTS, ints: value as number[] } : { name, type: T.FLOATS, floats: value as number[] };
  }
  if (typeof value === 'number') {
    return Number.isInteger(value) ? { name, type: T.INT, i: value } : { name, type: T.FLOAT, f: value };
  }
  if ('floats' in value) return { name, type: T.FLOATS, floats: value.floats };
  if ('graph' in value) return { name, type: T.GRAPH, g: value.graph };
  return { name, type: T.TENSOR, t: value as TensorProto };
}

export interface ModelSpec {
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
  initializers: TensorProto[];
  nodes: NodeProto[];
  name?: string;
  opset?: number;
  /** Opsets of other domains, e.g. `{ 'ai.onnx.ml': 3 }` for tree ensembles. */
  domains?: Record<string, number>;
  producer?: string;
  docString?: string;
  metadata?: Record<string, string>;
}

export function encodeModel(spec: ModelSpec): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: spec.producer ?? 'flotilla',
    producerVersion: '0.1.0',
    opsetImport: [{ domain: '', version: spec.opset ?? 13 }, ...Object.entries(spec.domains ?? {}).map(([domain, version]) => ({ domain, version }))],
    docString: spec.docString ?? '',
    metadataProps: Object.entries(spec.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: spec.name ?? 'main',
      input: spec.inputs,
      output: spec.outputs,
      initializer: spec.initializers,
      node: spec.nodes,
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/**
 * The float32 initializers of a model's main graph by name (raw or `floatData` storage), e.g. to
 * fine-tune a built-in model from a registered version's ONNX. Only graph initializers: weights in
 * `Constant` nodes or subgraphs are not returned (the built-in trainers never put them there).
 *
 * @example
 * const w = readFloatInitializers(bytes).get('W1'); // { dims: [16, 8], data: Float32Array(128) }
 */
export function readFloatInitializers(bytes: Uint8Array): Map<string, { dims: number[]; data: Float32Array }> {
  const model = onnx.ModelProto.decode(bytes);
  const out = new Map<string, { dims: number[]; data: Float32Array }>();
  for (const t of model.graph?.initializer ?? []) {
    if (t.dataType !== ELEM.float32 || !t.name) continue;
    const dims = (t.dims ?? []).map((d) => Number(d));
    let data: Float32Array;
    if (t.rawData && t.rawData.length > 0) {
      // Copy: the decoded buffer may not be 4-byte aligned.
      data = new Float32Array(Uint8Array.from(t.rawData).buffer);
    } else {
      data = Float32Array.from(t.floatData ?? []);
    }
    out.set(t.name, { dims, data });
  }
  return out;
}
