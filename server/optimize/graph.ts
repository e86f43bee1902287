/**
 * Graph plumbing shared by the optimizer passes: decoding with integrity checks, scopes (the main
 * graph and every If/Loop/Scan subgraph), who consumes which tensor, where a constant weight lives
 * (graph initializer or Constant node, in this scope or an outer one), float/int8 tensor access and
 * fresh unique names.
 */
import { onnx, type GraphProto, type NodeProto, type TensorProto } from '../onnx/onnx-proto.ts';
import { OptimizeError } from './errors.ts';

export type Model = InstanceType<typeof onnx.ModelProto>;

export const FLOAT = 1;
export const UINT8 = 2;
export const INT8 = 3;
export const INT32 = 6;
export const INT64 = 7;

/** A graph together with the graphs enclosing it (name lookup walks outwards, as ONNX scoping does). */
export interface Scope {
  graph: GraphProto;
  parent?: Scope;
  /** Human-readable location for reports: `main`, `main/If_0.then_branch`, … */
  path: string;
}

export function decodeModel(bytes: Uint8Array): Model {
  let model: Model;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new OptimizeError('corrupt_model', `not a valid ONNX protobuf (${(err as Error).message})`);
  }
  // Protobuf decoding is lenient (garbage can decode into a near-empty message), so check what a model must have.
  if (!model.graph || !(Number(model.irVersion) > 0)) throw new OptimizeError('corrupt_model', 'not an ONNX model: no ir_version or graph');
  if (!model.graph.output?.length) throw new OptimizeError('corrupt_model', 'ONNX graph declares no outputs');
  if (!model.graph.node?.length) throw new OptimizeError('corrupt_model', 'ONNX graph has no nodes');
  if (opsetOf(model) === 0) throw new OptimizeError('corrupt_model', 'ONNX model imports no default-domain opset');
  const dangling = danglingInputs(model);
  if (dangling.length) {
    throw new OptimizeError('corrupt_model', `ONNX graph references undefined tensors: ${dangling.slice(0, 5).join(', ')}${dangling.length > 5 ? ', …' : ''}`, { dangling: dangling.slice(0, 20) });
  }
  return model;
}

export function encodeModel(model: Model): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/** The default-domain opset version (0 when absent). */
export function opsetOf(model: Model): number {
  const o = (model.opsetImport ?? []).find((x) => !x.domain || x.domain === 'ai.onnx');
  return o ? Number(o.version) : 0;
}

/** Every scope, outer before inner. */
export function scopes(model: Model): Scope[] {
  const out: Scope[] = [];
  const visit = (scope: Scope) => {
    out.push(scope);
    for (const n of scope.graph.node ?? []) {
      for (const a of n.attribute ?? []) {
        const label = `${scope.path}/${n.name || n.opType}.${a.name}`;
        if (a.g) visit({ graph: a.g, parent: scope, path: label });
        (a.graphs ?? []).forEach((g, i) => visit({ graph: g, parent: scope, path: `${label}[${i}]` }));
      }
    }
  };
  visit({ graph: model.graph!, path: 'main' });
  return out;
}

/** The scope whose graph directly contains `node`. */
export function scopeOfNode(all: Scope[], node: NodeProto): Scope {
  const s = all.find((sc) => sc.graph.node?.includes(node));
  if (!s) throw new Error('node not found in any scope');
  return s;
}

function danglingInputs(model: Model): string[] {
  const missing: string[] = [];
  const check = (graph: GraphProto, outer: Set<string>) => {
    const known = new Set(outer);
    for (const v of graph.input ?? []) known.add(v.name ?? '');
    for (const t of graph.initializer ?? []) known.add(t.name ?? '');
    for (const n of graph.node ?? []) for (const o of n.output ?? []) known.add(o);
    for (const n of graph.node ?? []) {
      for (const i of n.input ?? []) if (i && !known.has(i)) missing.push(i);
      for (const a of n.attribute ?? []) {
        if (a.g) check(a.g, known);
        for (const g of a.graphs ?? []) check(g, known);
      }
    }
    for (const o of graph.output ?? []) if (o.name && !known.has(o.name)) missing.push(o.name);
  };
  check(model.graph!, new Set());
  return missing;
}

export interface Use {
  scope: Scope;
  node?: NodeProto;
  /** Input position on `node`; -1 when the use is a graph output. */
  index: number;
}

/**
 * Every use of every tensor name, in every scope. Names are matched globally (ignoring shadowing),
 * which can only over-count uses: the passes then skip a weight they could have rewritten, never the reverse.
 */
export function usesByName(all: Scope[]): Map<string, Use[]> {
  const uses = new Map<string, Use[]>();
  const add = (name: string, use: Use) => {
    if (!name) return;
    const list = uses.get(name);
    if (list) list.push(use);
    else uses.set(name, [use]);
  };
  for (const scope of all) {
    for (const n of scope.graph.node ?? []) (n.input ?? []).forEach((name, index) => add(name, { scope, node: n, index }));
    for (const o of scope.graph.output ?? []) add(o.name ?? '', { scope, index: -1 });
  }
  return uses;
}

/** Where a constant lives: removing it from there is how a pass retires the fp32 copy. */
export interface ConstRef {
  name: string;
  tensor: TensorProto;
  kind: 'initializer' | 'constant';
  scope: Scope;
  /** A main-graph initializer that is also listed as a graph input (older exporters): overridable at run time. */
  alsoGraphInput: boolean;
  remove(): void;
}

/** Resolves `name` as a constant visible from `scope` (initializer or Constant node, innermost first). */
export function resolveConst(scope: Scope, name: string): ConstRef | undefined {
  for (let s: Scope | undefined = scope; s; s = s.parent) {
    const g = s.graph;
    // A name produced by a node or declared as a (sub)graph input in this scope shadows outer constants.
    const init = (g.initializer ?? []).find((t) => t.name === name);
    if (init) {
      const owner = s;
      const alsoGraphInput = (g.input ?? []).some((v) => v.name === name);
      return {
        name,
        tensor: init,
        kind: 'initializer',
        scope: owner,
        alsoGraphInput,
        remove() {
          owner.graph.initializer = (owner.graph.initializer ?? []).filter((t) => t !== init);
          if (alsoGraphInput) owner.graph.input = (owner.graph.input ?? []).filter((v) => v.name !== name);
        },
      };
    }
    const cnode = (g.node ?? []).find((n) => n.opType === 'Constant' && n.output?.[0] === name);
    if (cnode) {
      const value = (cnode.attribute ?? []).find((a) => a.name === 'value' && a.t);
      if (!value?.t) return undefined; // value_float(s)/value_int(s) constants are never weight matrices
      const owner = s;
      return {
        name,
        tensor: value.t,
        kind: 'constant',
        scope: owner,
        alsoGraphInput: false,
        remove() {
          owner.graph.node = (owner.graph.node ?? []).filter((n) => n !== cnode);
        },
      };
    }
    if ((g.input ?? []).some((v) => v.name === name)) return undefined;
    if ((g.node ?? []).some((n) => n.output?.includes(name))) return undefined;
  }
  return undefined;
}

export function dimsOf(t: TensorProto): number[] {
  return (t.dims ?? []).map((d) => Number(d));
}

export function elementCount(dims: number[]): number {
  return dims.reduce((n, d) => n * d, 1);
}

/** A float32 tensor's values, or a reason why they cannot be read. */
export function readFloat(t: TensorProto): Float32Array | string {
  if (t.dataType !== FLOAT) return `dtype ${t.dataType} is not float32`;
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL || (t.externalData?.length ?? 0) > 0) return 'weights stored as external data';
  const n = elementCount(dimsOf(t));
  if (t.rawData && t.rawData.length > 0) {
    if (t.rawData.length !== n * 4) return `raw_data holds ${t.rawData.length} bytes, dims need ${n * 4}`;
    // Copy: the decoded buffer may not be 4-byte aligned. ONNX raw_data is little-endian, as is every host we run on.
    return new Float32Array(Uint8Array.from(t.rawData).buffer);
  }
  const f = t.floatData ?? [];
  if (f.length !== n) return `float_data holds ${f.length} values, dims need ${n}`;
  return Float32Array.from(f);
}

export function writeFloat(t: TensorProto, data: Float32Array, dims?: number[]): void {
  if (dims) t.dims = dims;
  t.rawData = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  t.floatData = [];
}

export function tensor(name: string, dataType: number, dims: number[], data: Float32Array | Int8Array | Uint8Array | Int32Array | BigInt64Array): TensorProto {
  return { name, dataType, dims, rawData: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)) };
}

export function attr(n: NodeProto, name: string) {
  return (n.attribute ?? []).find((a) => a.name === name);
}

export function intAttr(n: NodeProto, name: string, dflt: number): number {
  const a = attr(n, name);
  return a ? Number(a.i) : dflt;
}

export function floatAttr(n: NodeProto, name: string, dflt: number): number {
  const a = attr(n, name);
  return a ? Number(a.f) : dflt;
}

export function intsAttr(n: NodeProto, name: string): number[] | undefined {
  const a = attr(n, name);
  return a ? (a.ints ?? []).map((v) => Number(v)) : undefined;
}

/** Fresh tensor/node names that collide with nothing in the model. */
export class Names {
  private used = new Set<string>();
  constructor(model: Model) {
    for (const s of scopes(model)) {
      const g = s.graph;
      for (const v of [...(g.input ?? []), ...(g.output ?? []), ...(g.valueInfo ?? [])]) this.used.add(v.name ?? '');
      for (const t of g.initializer ?? []) this.used.add(t.name ?? '');
      for (const n of g.node ?? []) {
        for (const o of n.output ?? []) this.used.add(o);
        if (n.name) this.used.add(n.name);
      }
    }
  }
  fresh(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }
}

/** Counts float32 parameters everywhere weights live (initializers, Constant nodes, subgraphs). */
export function floatParamCount(model: Model): number {
  let n = 0;
  for (const s of scopes(model)) {
    for (const t of s.graph.initializer ?? []) if (t.dataType === FLOAT) n += elementCount(dimsOf(t));
    for (const node of s.graph.node ?? []) {
      if (node.opType !== 'Constant') continue;
      const t = attr(node, 'value')?.t;
      if (t && t.dataType === FLOAT) n += elementCount(dimsOf(t));
    }
  }
  return n;
}

/** Drops value_info entries (shape annotations) for tensors whose shape or type a pass changed. */
export function forgetValueInfo(model: Model, names: Iterable<string>): void {
  const drop = new Set(names);
  for (const s of scopes(model)) s.graph.valueInfo = (s.graph.valueInfo ?? []).filter((v) => !drop.has(v.name ?? ''));
}

/** Sets or adds a metadata_props entry. */
export function setMetadata(model: Model, key: string, value: string): void {
  const props = model.metadataProps ?? (model.metadataProps = []);
  const existing = props.find((p) => p.key === key);
  if (existing) existing.value = value;
  else props.push({ key, value });
}
