/**
 * ONNX external data (weights in side files next to the `.onnx`, as torch.onnx and
 * `onnx.save(..., save_as_external_data=True)` write them): which tensors point where, whether the
 * pushed files hold every byte they name, and the model with the weights put back inside (for the
 * optimizer, which rewrites tensors in memory).
 *
 * The `.onnx` of such a model is small (the graph only), so it is decoded whole here; the data files
 * are only measured, or read when inlining.
 *
 * @example
 * const refs = externalRefsOf(modelBytes); // [{ tensor: 'W', location: 'model.onnx.data', offset: 0, length: 96 }]
 * checkExternalFiles(refs, new Map([['model.onnx.data', 96]])); // throws ExternalDataError naming what is missing
 * const inlined = inlineExternalData(modelBytes, (location) => files.get(location)!);
 */
import { SAFE_FILE_NAME } from '../../firmware-bundles/manifest.ts';
import { onnx, type GraphProto, type TensorProto } from './onnx-proto.ts';

/** One tensor stored outside the model file. `length` is null when the exporter left it out (to the end of the file). */
export interface ExternalRef {
  tensor: string;
  location: string;
  offset: number;
  length: number | null;
}

export class ExternalDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExternalDataError';
  }
}

/** Protobuf cannot encode a message of 2 GiB or more: past it, weights can only live outside the model file. */
export const PROTOBUF_LIMIT = 2 ** 31;

/** Names a bundle already uses for its own files: a side file may not take them. */
const RESERVED = new Set(['model.onnx', 'bundle.json', 'smoke.bin', 'manifest.json']);

/** Every externally stored tensor of the model: graph initializers, Constant nodes and subgraphs (If/Loop bodies) alike. */
export function externalRefsOf(modelBytes: Uint8Array): ExternalRef[] {
  const model = onnx.ModelProto.decode(modelBytes);
  const refs: ExternalRef[] = [];
  const visitTensor = (t: TensorProto) => {
    if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) return;
    const kv = Object.fromEntries((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    refs.push({ tensor: t.name ?? '', location: kv.location ?? '', offset: kv.offset ? Number(kv.offset) : 0, length: kv.length ? Number(kv.length) : null });
  };
  forEachTensor(model.graph ?? {}, visitTensor);
  return refs;
}

/**
 * Checks the pushed side files against what the model names: each location a plain file name that was
 * pushed, each tensor's bytes inside its file. `sizes` maps a file name to its size in bytes.
 */
export function checkExternalFiles(refs: readonly ExternalRef[], sizes: ReadonlyMap<string, number>): void {
  const missing = [...new Set(refs.map((r) => r.location))].filter((l) => !sizes.has(l));
  for (const r of refs) {
    if (!r.location) throw new ExternalDataError(`tensor "${r.tensor}" is stored as external data but names no location`);
    if (!SAFE_FILE_NAME.test(r.location) || r.location.includes('..')) {
      throw new ExternalDataError(`tensor "${r.tensor}" keeps its weights in "${r.location}": only a plain file name beside the model is supported (no folders); save with onnx.save(model, path, save_as_external_data=True, location="model.onnx.data")`);
    }
    if (RESERVED.has(r.location)) throw new ExternalDataError(`tensor "${r.tensor}" keeps its weights in "${r.location}", a name a bundle uses for its own file; save the weights under another name`);
  }
  if (missing.length > 0) {
    const names = missing.map((f) => `"${f}"`).join(', ');
    throw new ExternalDataError(`the model keeps its weights in external data file ${names}, which was not pushed: push the model's folder (flotilla models push <dir> or <model.onnx> with its data files beside it, or a .tar of the folder), or save it with the weights inside (python: onnx.save(onnx.load(path), out, save_as_external_data=False), possible below 2 GB)`);
  }
  for (const r of refs) {
    const size = sizes.get(r.location)!;
    const end = r.offset + (r.length ?? 0);
    if (!Number.isSafeInteger(r.offset) || r.offset < 0 || end > size) {
      throw new ExternalDataError(`tensor "${r.tensor}" reads bytes ${r.offset}–${end} of "${r.location}", which has ${size}: the data file does not belong to this model or is truncated`);
    }
  }
}

/** The model with every external tensor's bytes put back into `raw_data` (a self-contained file, below protobuf's 2 GB limit). */
export function inlineExternalData(modelBytes: Uint8Array, read: (location: string) => Uint8Array): Uint8Array {
  const model = onnx.ModelProto.decode(modelBytes);
  forEachTensor(model.graph ?? {}, (t) => {
    if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) return;
    const kv = Object.fromEntries((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const file = read(kv.location);
    const offset = kv.offset ? Number(kv.offset) : 0;
    t.rawData = file.subarray(offset, kv.length ? offset + Number(kv.length) : file.length);
    t.externalData = [];
    t.dataLocation = onnx.TensorProto.DataLocation.DEFAULT;
  });
  return onnx.ModelProto.encode(model).finish();
}

function forEachTensor(graph: GraphProto, visit: (t: TensorProto) => void): void {
  for (const t of graph.initializer ?? []) visit(t);
  for (const n of graph.node ?? []) {
    for (const a of n.attribute ?? []) {
      if (a.t) visit(a.t);
      for (const t of a.tensors ?? []) visit(t);
      if (a.g) forEachTensor(a.g, visit);
      for (const g of a.graphs ?? []) forEachTensor(g, visit);
    }
  }
}
