// Content-addressed artifact store on the local disk: files live at <dir>/sha256/<hex>.
// Uploads stream into <dir>/tmp while hashing and are renamed into place only when complete,
// so a crash or an aborted upload never leaves a partial file under sha256/.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ServiceError } from '../errors.ts';

export interface StagedUpload {
  tempPath: string;
  sha256: string;
  size: number;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

export class ArtifactStore {
  private readonly blobDir: string;
  private readonly tmpDir: string;

  constructor(dir: string) {
    this.blobDir = path.join(dir, 'sha256');
    this.tmpDir = path.join(dir, 'tmp');
  }

  /** Creates the folders and removes temp files left by a crash. */
  async start(): Promise<void> {
    await mkdir(this.blobDir, { recursive: true });
    await rm(this.tmpDir, { recursive: true, force: true });
    await mkdir(this.tmpDir, { recursive: true });
  }

  /** Streams a body into a temp file, hashing as it goes; throws payload_too_large past maxBytes. */
  async stage(body: Readable, opts: { maxBytes: number; expectedSize?: number }): Promise<StagedUpload> {
    const tempPath = path.join(this.tmpDir, randomBytes(12).toString('hex'));
    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        if (size > opts.maxBytes) {
          cb(new ServiceError('payload_too_large', `upload exceeds the limit of ${opts.maxBytes} bytes`, { maxBytes: opts.maxBytes }));
          return;
        }
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(body, meter, createWriteStream(tempPath, { flags: 'wx' }));
    } catch (err) {
      await rm(tempPath, { force: true });
      if (err instanceof ServiceError) throw err;
      throw new ServiceError('invalid_request', `upload interrupted: ${(err as Error).message}`);
    }
    if (opts.expectedSize !== undefined && size !== opts.expectedSize) {
      await rm(tempPath, { force: true });
      throw new ServiceError('invalid_request', `upload truncated: received ${size} of ${opts.expectedSize} bytes`);
    }
    return { tempPath, sha256: hash.digest('hex'), size };
  }

  /** Moves a staged upload into place (a no-op if identical content is already stored). */
  async commit(staged: StagedUpload): Promise<void> {
    const target = this.pathOf(staged.sha256);
    const exists = await stat(target).then(() => true, () => false);
    if (exists) {
      await rm(staged.tempPath, { force: true });
      return;
    }
    // fsync before rename so a power cut cannot leave a renamed-but-empty blob.
    const fh = await open(staged.tempPath, 'r');
    await fh.sync();
    await fh.close();
    await rename(staged.tempPath, target);
  }

  async discard(staged: StagedUpload): Promise<void> {
    await rm(staged.tempPath, { force: true });
  }

  /** Stores bytes produced by the server itself (bundle files). */
  async putBytes(bytes: Uint8Array): Promise<{ sha256: string; size: number }> {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const tempPath = path.join(this.tmpDir, randomBytes(12).toString('hex'));
    await writeFile(tempPath, bytes, { flag: 'wx' });
    await this.commit({ tempPath, sha256, size: bytes.length });
    return { sha256, size: bytes.length };
  }

  pathOf(sha256: string): string {
    if (!SHA256_HEX.test(sha256)) throw new ServiceError('invalid_request', 'artifact id must be 64 lowercase hex characters');
    return path.join(this.blobDir, sha256);
  }

  async size(sha256: string): Promise<number | null> {
    return stat(this.pathOf(sha256)).then((s) => s.size, () => null);
  }

  readStream(sha256: string, range?: { start: number; end: number }): Readable {
    return createReadStream(this.pathOf(sha256), range);
  }

  async remove(sha256: string): Promise<void> {
    await rm(this.pathOf(sha256), { force: true });
  }

  /** Temp files currently present (tests use it to prove nothing half-written is left). */
  async pendingTempFiles(): Promise<string[]> {
    return readdir(this.tmpDir);
  }
}
