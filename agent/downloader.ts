// Resumable, verified artifact downloads. Each file streams into `<name>.part` while it is hashed
// with a byte cap (the manifest's size: a server sending more is cut off, "endless data"); an
// interrupted transfer (network, kill -9) continues from the part file's size with `Range: bytes=N-`.
// Only a file whose size and sha256 match the signed manifest is renamed to its final name.
// Failures are sorted by what they say about the server:
// - a verdict (hash, size) or a refusal (4xx: 401, 403, 404 …) fails the download at once: asking
//   again gets the same answer;
// - a busy server (503/429 with Retry-After, server/artifacts/download-gate.ts) is waited out —
//   Retry-After plus up to as much again of jitter, so a herd told the same Retry-After does not
//   come back at once;
// - no answer (refused, reset, timed out, cut short) or an overloaded one (408, 429, 502, 503, 504) is
//   what a fleet downloading at once meets on a starved server (bench/RESULTS.md, "Downloads in a herd"):
//   retried with jittered exponential backoff until `giveUpAt` (the update's time bound), not after a
//   fixed count of quick attempts;
// - any other answer (500 …) is a broken server or mirror: `retries` attempts more, then it fails.
import { createReadStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { DigestAccumulator, FileDigestError, verifyFile } from '../firmware-bundles/file-digest.ts';
import type { ManifestFile } from '../firmware-bundles/manifest.ts';
import { Backoff, sleep } from './backoff.ts';
import { httpClient, type HttpFetch, type HttpResponse } from './http-client.ts';

/** Without a client given (tests), the system's CAs. */
const defaultClient = httpClient();

export type DownloadErrorCode = 'HASH_MISMATCH' | 'SIZE_MISMATCH' | 'TOO_LARGE' | 'DOWNLOAD_FAILED';

export class DownloadError extends Error {
  constructor(
    readonly code: DownloadErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'DownloadError';
  }
}

/**
 * Worth another attempt (resuming from what is on disk). `counted`: the server answered with an error,
 * and only `retries` of those are tried again; otherwise (no answer, an overloaded one) the download
 * goes on until its time bound.
 */
class RetryableError extends Error {
  constructor(
    message: string,
    readonly how: { counted?: boolean; progressed?: boolean } = {},
  ) {
    super(message);
  }
}

/** Answers that mean "overloaded, ask again" rather than "broken" (a proxy in front of a starved server gives 502/504). */
const OVERLOADED = new Set([408, 429, 502, 503, 504]);

/** The server is shedding load and said when to come back. */
class BusyError extends Error {
  constructor(readonly retryAfterMs: number) {
    super(`server busy; retry after ${retryAfterMs} ms`);
  }
}

/** A Retry-After longer than this is taken as this (a misconfigured server must not park a device for hours). */
export const MAX_RETRY_AFTER_MS = 5 * 60_000;

/** Retry-After in ms (delta-seconds or an HTTP date), or null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (value === null || value.trim() === '') return null;
  const v = value.trim();
  // An HTTP date names its day and month; Date.parse alone would read "-5" as a year.
  const ms = /^\d+$/.test(v) ? Number(v) * 1000 : /[a-z]{3}/i.test(v) ? Date.parse(v) - now : NaN;
  return Number.isFinite(ms) ? Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms)) : null;
}

export interface DownloaderOptions {
  /** Base URL serving `/artifacts/sha256/<hex>`. */
  baseUrl: string;
  username: string;
  password: string;
  /** Attempts more after the server answered with an error (500 …); no answer or a busy one does not count. */
  retries: number;
  /** An attempt whose answer (status and headers) has not come after this long is given up; default idleTimeoutMs. */
  answerTimeoutMs?: number;
  /** An attempt that got no bytes for this long, once the answer came, is given up (and resumed). */
  idleTimeoutMs: number;
  backoff: { minMs: number; maxMs: number };
  logger: Logger;
  /** The HTTP client to use (pinned to the device's CA); default one with the system's CAs. */
  fetch?: HttpFetch;
  /** Jitter source (tests seed it); default Math.random. */
  random?: () => number;
}

export interface FetchOptions {
  signal: AbortSignal;
  /** Epoch ms after which no attempt starts: a server that keeps not answering fails the download then (default: never; the signal ends it). */
  giveUpAt?: number;
  /** Bytes of this file on disk so far (called often; throttle on the caller's side). */
  onProgress?: (bytes: number) => void;
}

export class Downloader {
  constructor(private readonly opts: DownloaderOptions) {}

  /** Ensures `dir/<file.path>` holds the file the manifest names; resumes a part file if there is one. */
  async fetchFile(file: ManifestFile, dir: string, fo: FetchOptions): Promise<void> {
    const final = path.join(dir, file.path);
    if (await exists(final)) {
      const r = await verifyFile(final, file).catch(() => null);
      if (r?.ok) {
        fo.onProgress?.(file.size);
        return;
      }
      await rm(final, { force: true });
    }
    const part = final + '.part';
    const backoff = new Backoff(this.opts.backoff);
    const started = Date.now();
    let restartedFromZero = false;
    let lastError = 'no attempt made';
    let attempts = 0;
    let counted = 0;
    let delay = 0;
    const gaveUp = () => new DownloadError('DOWNLOAD_FAILED', `${file.path}: gave up after ${attempts} attempts in ${Math.round((Date.now() - started) / 1000)} s: ${lastError}`);
    // The update's deadline (reconciler.ts) falls on giveUpAt. On a loaded machine it can fire while an
    // attempt is still on the wire (or a backoff timer runs late): that is this download reaching its
    // bound, so it fails as such, naming why the attempts failed, not as an update that ran out of time.
    const pastBound = () => fo.signal.aborted && fo.giveUpAt !== undefined && Date.now() >= fo.giveUpAt;
    for (;;) {
      if (delay > 0) {
        if (fo.giveUpAt !== undefined && Date.now() + delay >= fo.giveUpAt) throw gaveUp();
        await sleep(delay, fo.signal).catch((err) => {
          throw pastBound() ? gaveUp() : err;
        });
      }
      delay = 0;
      attempts++;
      let resumedFrom = 0;
      try {
        const result = await this.transfer(file, part, fo);
        resumedFrom = result.resumedFrom;
        const acc = result.acc;
        const verdict = acc.check(file);
        if (!verdict.ok) {
          // A part file from before a crash may hold bytes the disk never persisted correctly: start
          // over once before calling the artifact tampered.
          if (verdict.reason === 'HASH_MISMATCH' && resumedFrom > 0 && !restartedFromZero) {
            restartedFromZero = true;
            await rm(part, { force: true });
            this.opts.logger.warn({ file: file.path }, 'resumed file does not hash right; downloading it again from the start');
            continue;
          }
          await rm(part, { force: true });
          throw new DownloadError(verdict.reason, `${file.path}: ${verdict.message}`);
        }
        // Not fsynced here: installing fsyncs the staging directory and its files before it becomes a
        // bundle, and a rename lost to a crash only means resuming from the part file.
        await rename(part, final);
        return;
      } catch (err) {
        if (pastBound()) {
          if (attempts === 1) lastError = `no answer by the update's time bound (${(err as Error).message})`;
          throw gaveUp();
        }
        if (fo.signal.aborted) throw fo.signal.reason;
        if (err instanceof DownloadError) throw err;
        if (err instanceof BusyError) {
          delay = Math.round(err.retryAfterMs * (1 + (this.opts.random ?? Math.random)()));
          lastError = err.message;
          this.opts.logger.info({ file: file.path, retryInMs: delay }, 'artifact server busy; waiting as it asked');
          continue;
        }
        if (err instanceof FileDigestError) {
          await rm(part, { force: true });
          throw new DownloadError('TOO_LARGE', `${file.path}: the server sent more than the signed ${file.size} bytes`);
        }
        lastError = (err as Error).message;
        // Anything but a known herd symptom (an error answer, the disk …) has `retries` more attempts.
        if ((!(err instanceof RetryableError) || err.how.counted) && ++counted > this.opts.retries) {
          throw new DownloadError('DOWNLOAD_FAILED', `${file.path}: gave up after ${attempts} attempts, ${counted} of them failed otherwise than by a busy or unreachable server: ${lastError}`);
        }
        // Bytes arrived: the server is serving again, so the next wait starts small.
        if (err instanceof RetryableError && err.how.progressed) backoff.reset();
        delay = Math.max(1, backoff.next());
        this.opts.logger.warn({ file: file.path, attempt: attempts, err: lastError, retryInMs: delay }, 'download attempt failed');
      }
    }
  }

  /** One HTTP attempt: the digest of the whole file as now on disk, and the offset it resumed from. */
  private async transfer(file: ManifestFile, part: string, fo: FetchOptions): Promise<{ acc: DigestAccumulator; resumedFrom: number }> {
    let acc = new DigestAccumulator(file.size);
    let offset = (await stat(part).catch(() => null))?.size ?? 0;
    if (offset > file.size) {
      await rm(part, { force: true });
      offset = 0;
    }
    if (offset > 0) for await (const chunk of createReadStream(part, { end: offset - 1 })) acc.update(chunk as Buffer);
    fo.onProgress?.(offset);
    if (offset === file.size) return { acc, resumedFrom: offset };

    const idle = new AbortController();
    // Until the answer's headers the wait is the longer answer timeout: a starved server accepts and
    // answers in arrival order, and an attempt given up there loses its place and leaves the server a
    // request to serve to nobody. Once bytes flow, the idle timeout applies between them.
    const { answerTimeoutMs = this.opts.idleTimeoutMs } = this.opts;
    let idleTimer = setTimeout(() => idle.abort(new Error(`no answer for ${answerTimeoutMs} ms`)), answerTimeoutMs);
    const touch = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => idle.abort(new Error(`no data for ${this.opts.idleTimeoutMs} ms`)), this.opts.idleTimeoutMs);
    };
    const signal = AbortSignal.any([fo.signal, idle.signal]);
    const url = new URL(`artifacts/sha256/${file.sha256}`, this.opts.baseUrl.endsWith('/') ? this.opts.baseUrl : this.opts.baseUrl + '/');
    const headers: Record<string, string> = {
      authorization: 'Basic ' + Buffer.from(`${this.opts.username}:${this.opts.password}`).toString('base64'),
    };
    if (offset > 0) headers.range = `bytes=${offset}-`;
    try {
      let res: HttpResponse;
      try {
        res = await (this.opts.fetch ?? defaultClient)(url, { headers, signal });
      } catch (err) {
        throw new RetryableError(signal.aborted && !fo.signal.aborted ? String(idle.signal.reason?.message ?? 'idle timeout') : errorText(err));
      }
      touch();
      if (res.status === 416) {
        await res.body.cancel();
        await rm(part, { force: true });
        throw new RetryableError('range not satisfiable; starting over', { counted: true });
      }
      const retryAfterMs = res.status === 503 || res.status === 429 ? parseRetryAfter(res.headers.get('retry-after')) : null;
      if (retryAfterMs !== null) {
        await res.body.cancel();
        throw new BusyError(retryAfterMs);
      }
      if (res.status !== 200 && res.status !== 206) {
        const what = `HTTP ${res.status}${await errorMessageOf(res)}`;
        if (OVERLOADED.has(res.status)) throw new RetryableError(what);
        // A refusal (401, 403, 404 …) is the same on every attempt: fail now, not after a round of backoff.
        if (res.status >= 400 && res.status < 500) throw new DownloadError('DOWNLOAD_FAILED', `${file.path}: ${what}`);
        throw new RetryableError(what, { counted: true });
      }
      let total: number | null = null;
      if (res.status === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
        if (!m || Number(m[1]) !== offset) {
          await res.body.cancel();
          await rm(part, { force: true });
          throw new RetryableError(`unexpected Content-Range ${res.headers.get('content-range')}`, { counted: true });
        }
        if (m[3] !== '*') total = Number(m[3]);
      } else {
        if (offset > 0) {
          // The server ignored the Range header: take the whole file from the start.
          await rm(part, { force: true });
          acc = new DigestAccumulator(file.size);
          offset = 0;
        }
        const len = res.headers.get('content-length');
        if (len !== null) total = Number(len);
      }
      if (total !== null && total !== file.size) {
        await res.body.cancel();
        throw total > file.size
          ? new DownloadError('TOO_LARGE', `${file.path}: server announces ${total} bytes, the manifest signed ${file.size}`)
          : new DownloadError('SIZE_MISMATCH', `${file.path}: server announces ${total} bytes, the manifest signed ${file.size}`);
      }
      const fh = await open(part, 'a', 0o600);
      try {
        for await (const chunk of res.body) {
          touch();
          acc.update(chunk); // throws TOO_LARGE before a byte past the cap reaches the disk
          await fh.write(chunk);
          fo.onProgress?.(acc.size);
        }
        await fh.sync();
      } catch (err) {
        await fh.sync().catch(() => {});
        if (err instanceof FileDigestError || err instanceof DownloadError) throw err;
        throw new RetryableError(signal.aborted && !fo.signal.aborted ? String(idle.signal.reason?.message ?? 'idle timeout') : errorText(err), { progressed: acc.size > offset });
      } finally {
        await fh.close();
      }
      if (acc.size < file.size) throw new RetryableError(`connection ended after ${acc.size} of ${file.size} bytes`, { progressed: acc.size > offset });
      return { acc, resumedFrom: offset };
    } finally {
      clearTimeout(idleTimer);
    }
  }
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** fetch's own message ("fetch failed") hides what failed: its cause's code says (ECONNRESET, UND_ERR_CONNECT_TIMEOUT…). */
function errorText(err: unknown): string {
  const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
  return cause ? `${(err as Error).message} (${cause.code ?? cause.message})` : (err as Error).message;
}

/** The `{error:{code,message}}` of an error answer, as " (code: message)", or ""; at most 4 KiB of it is read. */
async function errorMessageOf(res: HttpResponse): Promise<string> {
  try {
    if (!/json/.test(res.headers.get('content-type') ?? '')) return '';
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      chunks.push(chunk);
      if ((size += chunk.length) > 4096) return '';
    }
    const e = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error?: { code?: unknown; message?: unknown } }).error;
    return typeof e?.code === 'string' ? ` (${e.code}: ${String(e.message ?? '').slice(0, 200)})` : '';
  } catch {
    return '';
  } finally {
    await res.body.cancel();
  }
}
