/**
 * Streaming checks of downloaded files against the manifest's `{ sha256, size }`. The byte cap is
 * enforced while reading, so a server (or attacker) that keeps sending data is cut off at
 * `size + 1` bytes instead of filling the device's disk ("endless data").
 *
 * For resumable downloads, feed the bytes already on disk and then the rest of the transfer into the
 * same `DigestAccumulator`.
 *
 * @example
 * const r = await verifyFile('/var/lib/flotilla-agent/staging/model.onnx', { sha256, size });
 * if (!r.ok) fail(r.reason, r.message);
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { reject, type FileRejectReason, type Verdict } from './reasons.ts';

/** What a file should be. */
export interface ExpectedDigest {
  sha256: string;
  size: number;
}

/**
 * Thrown by capped hashing as soon as the cap is exceeded.
 *
 * @example
 * catch (e) { if (e instanceof FileDigestError && e.code === 'TOO_LARGE') abortDownload(); }
 */
export class FileDigestError extends Error {
  constructor(
    readonly code: 'TOO_LARGE',
    message: string,
    /** Bytes seen when the cap was exceeded. */
    readonly bytesSeen: number,
  ) {
    super(message);
    this.name = 'FileDigestError';
  }
}

/**
 * Incremental sha256 and byte count with a cap.
 *
 * @example
 * const acc = new DigestAccumulator(expected.size);
 * for await (const chunk of partFileStream) acc.update(chunk);
 * for await (const chunk of response.body) { acc.update(chunk); await out.write(chunk); }
 * const verdict = acc.check(expected);
 */
export class DigestAccumulator {
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;

  constructor(readonly maxBytes: number = Number.POSITIVE_INFINITY) {}

  /** Adds a chunk; throws FileDigestError('TOO_LARGE') once the total passes the cap. */
  update(chunk: Uint8Array | string): void {
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.bytes += data.byteLength;
    if (this.bytes > this.maxBytes) throw new FileDigestError('TOO_LARGE', `more than ${this.maxBytes} bytes`, this.bytes);
    this.hash.update(data);
  }

  get size(): number {
    return this.bytes;
  }

  /** Finishes hashing (once) and returns the digest and size. */
  digest(): ExpectedDigest {
    return { sha256: this.hash.digest('hex'), size: this.bytes };
  }

  /** Finishes hashing and compares with what the manifest says. */
  check(expected: ExpectedDigest): Verdict<{ actual: ExpectedDigest }, FileRejectReason> {
    return compareDigest(this.digest(), expected);
  }
}

/**
 * Hashes a stream while enforcing a byte cap. Throws FileDigestError('TOO_LARGE') as soon as the cap
 * is exceeded; leaving the loop early destroys a Node stream, so the transfer stops.
 *
 * @example
 * const { sha256, size } = await hashStream(createReadStream(path), { maxBytes: 512 * 1024 * 1024 });
 */
export async function hashStream(source: AsyncIterable<Uint8Array | string>, opts: { maxBytes?: number } = {}): Promise<ExpectedDigest> {
  const acc = new DigestAccumulator(opts.maxBytes);
  for await (const chunk of source) acc.update(chunk);
  return acc.digest();
}

/**
 * Verifies a stream against an expected digest; reading stops one byte past the expected size.
 *
 * @example
 * const r = await verifyStream(Readable.fromWeb(res.body), file);
 */
export async function verifyStream(source: AsyncIterable<Uint8Array | string>, expected: ExpectedDigest): Promise<Verdict<{ actual: ExpectedDigest }, FileRejectReason>> {
  try {
    return compareDigest(await hashStream(source, { maxBytes: expected.size }), expected);
  } catch (err) {
    if (err instanceof FileDigestError) return reject('SIZE_MISMATCH', `expected ${expected.size} bytes, got more than that`);
    throw err;
  }
}

/**
 * Verifies a file on disk. The size is checked with stat first, so a wrong-sized file is rejected
 * without hashing it.
 *
 * @example
 * for (const f of manifest.files) { const r = await verifyFile(join(stagingDir, f.path), f); if (!r.ok) return r; }
 */
export async function verifyFile(path: string, expected: ExpectedDigest): Promise<Verdict<{ actual: ExpectedDigest }, FileRejectReason>> {
  const info = await stat(path);
  if (info.size !== expected.size) return reject('SIZE_MISMATCH', `${path}: expected ${expected.size} bytes, found ${info.size}`);
  return verifyStream(createReadStream(path), expected);
}

/**
 * Compares a computed digest with the expected one.
 *
 * @example
 * compareDigest({ sha256: h, size: n }, manifestFile) // { ok: true, actual } or HASH_MISMATCH / SIZE_MISMATCH
 */
export function compareDigest(actual: ExpectedDigest, expected: ExpectedDigest): Verdict<{ actual: ExpectedDigest }, FileRejectReason> {
  if (actual.size !== expected.size) return reject('SIZE_MISMATCH', `expected ${expected.size} bytes, got ${actual.size}`);
  if (actual.sha256 !== expected.sha256.toLowerCase()) return reject('HASH_MISMATCH', `expected sha256 ${expected.sha256}, got ${actual.sha256}`);
  return { ok: true, actual };
}
