/**
 * A loaded model's file, held open for as long as the model is loaded. The agent renames a bundle's
 * staging dir into bundles/ when it activates it, and a re-signed manifest (bundle-store.ts `adopt`)
 * moves the files to a new dir and deletes the old one: the path a model was loaded from is soon gone.
 * An open file keeps its inode (and bytes) alive across rename and unlink, and an open directory
 * follows its renames, so a second session (a worker restarted after a crash, the move to the agent's
 * thread in 'auto') is created from these instead of the path. Nothing is kept in memory meanwhile
 * (a model's bytes would cost their size on a 512 MB gateway for the model's whole life).
 *
 * @example
 * const file = await ModelFile.open('/var/lib/flotilla-agent/staging/12-ab/model.onnx');
 * const bytes = await file.read(); // still the model after the dir was renamed or the file deleted
 * await file.close();
 */
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

export class ModelFile {
  private constructor(
    private readonly file: FileHandle,
    private readonly dir: FileHandle | undefined,
    /** Its size when opened (bundle files are never rewritten in place). */
    readonly size: number,
  ) {}

  /** Opens the model file (and, on Linux, its directory for external data files). */
  static async open(modelPath: string): Promise<ModelFile> {
    const file = await open(modelPath, 'r');
    try {
      const { size } = await file.stat();
      // The folder onnxruntime reads external weights from, through the directory's own descriptor
      // (`/proc/self/fd/N` follows a renamed dir); elsewhere there is no such path, so none is kept.
      const dir = process.platform === 'linux' ? await open(dirname(modelPath), 'r').catch(() => undefined) : undefined;
      return new ModelFile(file, dir, size);
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  /** The whole file, by positional reads (the handle's position is never shared state). */
  async read(): Promise<Uint8Array> {
    const bytes = new Uint8Array(this.size);
    for (let at = 0; at < bytes.length; ) {
      const { bytesRead } = await this.file.read(bytes, at, bytes.length - at, at);
      if (bytesRead === 0) throw new Error(`model file shorter than its ${this.size} bytes`);
      at += bytesRead;
    }
    return bytes;
  }

  /**
   * Where the model's external data files are now, for a session created from `read()`'s bytes
   * (onnxruntime's `session.model_external_initializers_file_folder_path`): the directory it was loaded
   * from, renamed or not. Undefined where not available. Files deleted from it are not found there.
   */
  get folder(): string | undefined {
    return this.dir && `/proc/self/fd/${this.dir.fd}`;
  }

  /** Idempotent. */
  async close(): Promise<void> {
    await Promise.all([this.file.close().catch(() => {}), this.dir?.close().catch(() => {})]);
  }
}
