/**
 * A model pushed as its export folder (a tar archive of it): what torch.onnx and
 * `onnx.save(..., save_as_external_data=True)` leave on disk — one `.onnx` plus the data files its
 * tensors name, side by side. A raw `.onnx` body is told apart by the tar magic at byte 257.
 *
 * @example
 * const folder = isTar(body) ? unpackModelFolder(body) : null; // { modelPath: 'export/model.onnx', model, files: Map { 'model.onnx.data' => … } }
 */
import path from 'node:path/posix';
import { readTar, TarError } from '../datasets/tar.ts';

export interface ModelFolder {
  /** Path of the `.onnx` inside the archive. */
  modelPath: string;
  model: Uint8Array;
  /** Every other file in the model's own folder, by plain name (what an external data `location` names). */
  files: Map<string, Uint8Array>;
}

export class ModelFolderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelFolderError';
  }
}

/** A ustar/pax/GNU tar header carries "ustar" at byte 257; an ONNX protobuf starts with its ir_version field. */
export function isTar(bytes: Uint8Array): boolean {
  return bytes.length >= 512 && new TextDecoder().decode(bytes.subarray(257, 262)) === 'ustar';
}

/** The archive's one `.onnx` and the files beside it. Throws ModelFolderError when there is not exactly one model. */
export function unpackModelFolder(bytes: Uint8Array): ModelFolder {
  let entries;
  try {
    entries = readTar(bytes);
  } catch (err) {
    if (err instanceof TarError) throw new ModelFolderError(`the upload looks like a tar archive but cannot be read: ${err.message}`);
    throw err;
  }
  const clean = entries.map((e) => ({ path: path.normalize(e.path).replace(/^(\.\/)+/, ''), data: e.data })).filter((e) => !path.basename(e.path).startsWith('._'));
  const onnxFiles = clean.filter((e) => e.path.toLowerCase().endsWith('.onnx'));
  if (onnxFiles.length !== 1) {
    throw new ModelFolderError(
      onnxFiles.length === 0
        ? 'the archive holds no .onnx file: pack the model\'s export folder (the .onnx and its data files)'
        : `the archive holds ${onnxFiles.length} .onnx files (${onnxFiles.map((e) => e.path).join(', ')}): push one model (with its data files) at a time`,
    );
  }
  const model = onnxFiles[0];
  const dir = path.dirname(model.path);
  const files = new Map<string, Uint8Array>();
  for (const e of clean) if (e !== model && path.dirname(e.path) === dir) files.set(path.basename(e.path), e.data);
  return { modelPath: model.path, model: model.data, files };
}
