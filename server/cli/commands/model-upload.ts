// What `flotilla models push <path>` sends: a self-contained .onnx streams as it is; a model whose
// weights live in ONNX external data files (torch.onnx's `model.onnx` + `model.onnx.data`) goes as a
// tar of the .onnx and the files it names, read from beside it; a folder is its one .onnx; a .tar is
// sent as it is (the server finds the model inside).
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { writeTar } from '../../datasets/tar.ts';
import { CliError } from '../output.ts';

export interface ModelUpload {
  /** The .onnx (or .tar) named in messages. */
  file: string;
  size: number;
  /** The tar to send instead of streaming `file` (a model with external data). */
  packed?: Uint8Array;
  /** External data files packed with the model. */
  sideFiles: string[];
}

// Protobuf cannot encode a message over 2 GB, so a .onnx is always smaller: reading it to look for external data is bounded.
export async function modelUpload(target: string): Promise<ModelUpload> {
  const info = await stat(target).catch(() => null);
  if (!info) throw new CliError(`no such file: ${target}: give the path of an .onnx file, its export folder, or a .tar of that folder`, 2);
  let file = target;
  if (info.isDirectory()) {
    const models = (await readdir(target)).filter((f) => f.toLowerCase().endsWith('.onnx'));
    if (models.length !== 1) throw new CliError(`${target} holds ${models.length} .onnx files: give the model file itself`, 2);
    file = path.join(target, models[0]);
  } else if (!info.isFile()) {
    throw new CliError(`no such file: ${target}: give the path of an .onnx file`, 2);
  }
  const size = (await stat(file)).size;
  if (file.toLowerCase().endsWith('.tar')) return { file, size, sideFiles: [] };
  const bytes = await readFile(file);
  // Loaded here, not at start: the ONNX protobuf schema is most of the CLI's start-up otherwise.
  const { InvalidOnnxError, inspectOnnx } = await import('../../onnx/inspect.ts');
  let external: string[];
  try {
    external = inspectOnnx(bytes).externalFiles;
  } catch (err) {
    // Not ONNX: the server says why, as for any upload.
    if (err instanceof InvalidOnnxError) return { file, size, sideFiles: [] };
    throw err;
  }
  if (external.length === 0) return { file, size, sideFiles: [] };
  const dir = path.dirname(file);
  const entries = [{ path: path.basename(file), data: bytes as Uint8Array }];
  for (const name of external) {
    const data = await readFile(path.resolve(dir, name)).catch(() => null);
    if (!data) throw new CliError(`${path.basename(file)} keeps its weights in external data file "${name}", which is not beside it in ${dir}: put the data file there, or save the model with the weights inside`, 2);
    entries.push({ path: name, data });
  }
  return { file, size, packed: writeTar(entries), sideFiles: external };
}
