// Downloader against a real HTTP server: resume with Range from a part file, a server that ignores
// Range, dropped connections (resumed), transient errors, and the verdicts it must not retry.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { DownloadError, Downloader, MAX_RETRY_AFTER_MS, parseRetryAfter } from './downloader.ts';
import { ArtifactServer, sha256 } from './testing/harness.ts';

const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff);

describe('Downloader', () => {
  let art: ArtifactServer;
  let dir: string;
  let dl: Downloader;
  const signal = new AbortController().signal;

  before(async () => {
    art = new ArtifactServer();
    await art.start();
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-dl-'));
    dl = new Downloader({ baseUrl: art.url, username: 'dev_abcdefgh1', password: 'pw', retries: 3, idleTimeoutMs: 2000, backoff: { minMs: 10, maxMs: 50 }, logger: pino({ level: 'silent' }) });
  });
  after(async () => {
    await art.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('downloads, verifies and renames; sends Basic credentials', async () => {
    const data = bytes(50_000);
    const f = art.add(data);
    let last = 0;
    await dl.fetchFile({ path: 'a.bin', ...f }, dir, { signal, onProgress: (b) => (last = b) });
    assert.equal(sha256(await readFile(path.join(dir, 'a.bin'))), f.sha256);
    assert.equal(last, data.length);
    assert.equal(art.requests.at(-1)!.auth, 'Basic ' + Buffer.from('dev_abcdefgh1:pw').toString('base64'));
    await assert.rejects(stat(path.join(dir, 'a.bin.part')));
  });

  test('resumes from a part file with Range: bytes=N-', async () => {
    const data = bytes(40_000, 2);
    const f = art.add(data);
    await writeFile(path.join(dir, 'b.bin.part'), data.subarray(0, 12_345));
    await dl.fetchFile({ path: 'b.bin', ...f }, dir, { signal });
    const req = art.requests.filter((r) => r.sha256 === f.sha256);
    assert.equal(req.length, 1);
    assert.equal(req[0].range, 'bytes=12345-');
    assert.equal(sha256(await readFile(path.join(dir, 'b.bin'))), f.sha256);
  });

  test('a dropped connection is resumed where it stopped', async () => {
    const data = bytes(60_000, 3);
    const f = art.add(data, { cut: { afterBytes: 20_000, times: 2 } });
    await dl.fetchFile({ path: 'c.bin', ...f }, dir, { signal });
    const starts = art.requests.filter((r) => r.sha256 === f.sha256).map((r) => r.start);
    // Each retry starts where the part file ended: 20,000 bytes further per cut, or (rarely, on a
    // loaded machine) where it was if the stream errored before the bytes it had buffered were read.
    assert.equal(starts.length, 3);
    assert.equal(starts[0], 0);
    for (let i = 1; i < starts.length; i++) assert.ok(starts[i] === starts[i - 1] || starts[i] === starts[i - 1] + 20_000, String(starts));
    assert.ok(starts[2] > 0, `resumed rather than started over: ${starts}`);
    assert.equal(sha256(await readFile(path.join(dir, 'c.bin'))), f.sha256);
  });

  test('a server that ignores Range: starts over from the full body', async () => {
    const data = bytes(30_000, 4);
    const f = art.add(data, { ignoreRange: true });
    await writeFile(path.join(dir, 'd.bin.part'), data.subarray(0, 10_000));
    await dl.fetchFile({ path: 'd.bin', ...f }, dir, { signal });
    assert.equal(sha256(await readFile(path.join(dir, 'd.bin'))), f.sha256);
  });

  test('a corrupt part file is detected and the file downloaded again once', async () => {
    const data = bytes(30_000, 5);
    const f = art.add(data);
    const junk = Buffer.from(data.subarray(0, 10_000));
    junk[5] ^= 0xff;
    await writeFile(path.join(dir, 'e.bin.part'), junk);
    await dl.fetchFile({ path: 'e.bin', ...f }, dir, { signal });
    assert.deepEqual(art.requests.filter((r) => r.sha256 === f.sha256).map((r) => r.start), [10_000, 0]);
    assert.equal(sha256(await readFile(path.join(dir, 'e.bin'))), f.sha256);
  });

  test('a busy or overloaded answer (503, 502, 504, 429) is retried past the retry count', async () => {
    // retries is 3: six failures in a row would have ended the download were they counted.
    const f = art.add(bytes(1000, 6), { fail: { status: 502, times: 6 } });
    await dl.fetchFile({ path: 'f.bin', ...f }, dir, { signal });
    assert.equal(art.requests.filter((r) => r.sha256 === f.sha256).length, 7);
    for (const status of [503, 504, 429, 408]) {
      const g = art.add(bytes(1000, status), { fail: { status, times: 5 } });
      await dl.fetchFile({ path: `busy-${status}.bin`, ...g }, dir, { signal });
    }
  });

  test('a refusal (404, 401, 403) fails at once, with the server\'s error in the message', async () => {
    for (const status of [404, 401, 403]) {
      const g = art.add(bytes(1000, status), { fail: { status, times: 100, json: { error: { code: 'not_found', message: 'artifact gone' } } } });
      await assert.rejects(
        dl.fetchFile({ path: `g${status}.bin`, ...g }, dir, { signal }),
        (e: unknown) => e instanceof DownloadError && e.code === 'DOWNLOAD_FAILED' && e.message.includes(`HTTP ${status} (not_found: artifact gone)`),
      );
      assert.equal(art.requests.filter((r) => r.sha256 === g.sha256).length, 1, `HTTP ${status} was asked once`);
    }
  });

  test('a server error (500) is tried `retries` times more, then DOWNLOAD_FAILED', async () => {
    const g = art.add(bytes(1000, 7), { fail: { status: 500, times: 100 } });
    await assert.rejects(dl.fetchFile({ path: 'g.bin', ...g }, dir, { signal }), (e: unknown) => e instanceof DownloadError && e.code === 'DOWNLOAD_FAILED' && /HTTP 500/.test(e.message));
    assert.equal(art.requests.filter((r) => r.sha256 === g.sha256).length, 4);
  });

  test('connections reset before any answer are retried past the retry count', async () => {
    const f = art.add(bytes(3000, 14), { reset: { times: 8 } });
    await dl.fetchFile({ path: 'reset.bin', ...f }, dir, { signal });
    assert.equal(art.requests.filter((r) => r.sha256 === f.sha256).length, 9);
    assert.equal(sha256(await readFile(path.join(dir, 'reset.bin'))), f.sha256);
  });

  test('a server that never answers fails at giveUpAt, naming why and how many attempts it took', async () => {
    const f = art.add(bytes(3000, 15), { reset: { times: 1_000_000 } });
    await assert.rejects(
      dl.fetchFile({ path: 'never.bin', ...f }, dir, { signal, giveUpAt: Date.now() + 400 }),
      (e: unknown) => e instanceof DownloadError && e.code === 'DOWNLOAD_FAILED' && /gave up after \d+ attempts in \d+ s: .*(socket hang up|ECONNRESET)/.test(e.message),
    );
    assert.ok(art.requests.filter((r) => r.sha256 === f.sha256).length > 4, 'more attempts than the retry count');
  });

  test("the update's deadline landing on an attempt in flight past giveUpAt fails the download as giving up, naming why the attempts failed", async () => {
    // On a loaded machine the reconciler's deadline (due at giveUpAt) fired while an attempt was on the
    // wire: the update ended "did not finish within …" without the cause. Here three resets, then a
    // held answer that is in flight when the deadline aborts (2 s: time for the resets on a loaded machine).
    const patient = new Downloader({ baseUrl: art.url, username: 'd', password: 'p', retries: 3, answerTimeoutMs: 30_000, idleTimeoutMs: 30_000, backoff: { minMs: 10, maxMs: 50 }, logger: pino({ level: 'silent' }) });
    const f = art.add(bytes(3000, 18), { reset: { times: 3 }, answerAfter: { ms: 30_000, times: 1 } });
    const ctl = new AbortController();
    const giveUpAt = Date.now() + 2000;
    const fetching = patient.fetchFile({ path: 'deadline.bin', ...f }, dir, { signal: ctl.signal, giveUpAt });
    const held = async () => {
      while (art.requests.filter((r) => r.sha256 === f.sha256).length < 4 || Date.now() < giveUpAt) await new Promise((r) => setTimeout(r, 10));
      ctl.abort(new Error('update did not finish within 2000 ms (while downloading)'));
    };
    await Promise.all([
      held(),
      assert.rejects(fetching, (e: unknown) => e instanceof DownloadError && e.code === 'DOWNLOAD_FAILED' && /gave up after 4 attempts in \d+ s: .*(socket hang up|ECONNRESET)/.test(e.message)),
    ]);
  });

  test('an answer slower than the idle timeout is waited for (answer timeout), not asked again', async () => {
    const patient = new Downloader({ baseUrl: art.url, username: 'd', password: 'p', retries: 0, answerTimeoutMs: 10_000, idleTimeoutMs: 100, backoff: { minMs: 10, maxMs: 20 }, logger: pino({ level: 'silent' }) });
    const f = art.add(bytes(3000, 16), { answerAfter: { ms: 600, times: 1 } });
    await patient.fetchFile({ path: 'queued.bin', ...f }, dir, { signal });
    assert.equal(art.requests.filter((r) => r.sha256 === f.sha256).length, 1, 'one request: its place in the queue was kept');
    // And the answer timeout does bound the wait: with a shorter one the attempt is given up and repeated.
    const hasty = new Downloader({ baseUrl: art.url, username: 'd', password: 'p', retries: 0, answerTimeoutMs: 100, idleTimeoutMs: 100, backoff: { minMs: 10, maxMs: 20 }, logger: pino({ level: 'silent' }) });
    const g = art.add(bytes(3000, 17), { answerAfter: { ms: 600, times: 1 } });
    await hasty.fetchFile({ path: 'requeued.bin', ...g }, dir, { signal });
    assert.equal(art.requests.filter((r) => r.sha256 === g.sha256).length, 2);
  });

  test('verdicts are not retried: HASH_MISMATCH, TOO_LARGE (announced and streamed), SIZE_MISMATCH', async () => {
    const t = art.add(bytes(5000, 8), { tamper: true });
    await assert.rejects(dl.fetchFile({ path: 't.bin', ...t }, dir, { signal }), (e: unknown) => (e as DownloadError).code === 'HASH_MISMATCH');
    assert.equal(art.requests.filter((r) => r.sha256 === t.sha256).length, 1);
    await assert.rejects(stat(path.join(dir, 't.bin.part')), 'no tampered bytes left behind');

    const big = art.add(bytes(5000, 9), { extraBytes: 100 });
    await assert.rejects(dl.fetchFile({ path: 'big.bin', ...big }, dir, { signal }), (e: unknown) => (e as DownloadError).code === 'TOO_LARGE');
    const endless = art.add(bytes(5000, 10), { extraBytes: 10_000_000, chunked: true });
    await assert.rejects(dl.fetchFile({ path: 'endless.bin', ...endless }, dir, { signal }), (e: unknown) => (e as DownloadError).code === 'TOO_LARGE');
    assert.ok(!(await stat(path.join(dir, 'endless.bin.part')).catch(() => null)), 'the capped bytes are dropped');

    const short = art.add(bytes(5000, 11));
    await assert.rejects(dl.fetchFile({ path: 's.bin', sha256: short.sha256, size: 6000 }, dir, { signal }), (e: unknown) => (e as DownloadError).code === 'SIZE_MISMATCH');
  });

  test('an abort stops the transfer and keeps the part file for later', async () => {
    const data = bytes(200_000, 12);
    const f = art.add(data, { bytesPerSecond: 100_000 });
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(new Error('stop')), 400);
    await assert.rejects(dl.fetchFile({ path: 'slow.bin', ...f }, dir, { signal: ctl.signal }), /stop/);
    const part = await stat(path.join(dir, 'slow.bin.part'));
    assert.ok(part.size > 0 && part.size < data.length);
  });

  test('a stalled server hits the idle timeout and the download resumes', async () => {
    const quick = new Downloader({ baseUrl: art.url, username: 'd', password: 'p', retries: 2, idleTimeoutMs: 150, backoff: { minMs: 10, maxMs: 20 }, logger: pino({ level: 'silent' }) });
    const data = bytes(20_000, 13);
    const f = art.add(data, { stall: { afterBytes: 7000, times: 1 } });
    const t0 = Date.now();
    await quick.fetchFile({ path: 'stall.bin', ...f }, dir, { signal });
    assert.ok(Date.now() - t0 < 2000);
    assert.deepEqual(art.requests.filter((r) => r.sha256 === f.sha256).map((r) => r.start), [0, 7000]);
    assert.equal(sha256(await readFile(path.join(dir, 'stall.bin'))), f.sha256);
  });
});

describe('parseRetryAfter', () => {
  test('seconds and HTTP dates become ms, capped; absent or unreadable is null', () => {
    const now = Date.parse('2026-12-04T04:00:00Z');
    assert.equal(parseRetryAfter('7', now), 7000);
    assert.equal(parseRetryAfter(' 0 ', now), 0);
    assert.equal(parseRetryAfter('Fri, 04 Dec 2026 04:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Fri, 04 Dec 2026 03:00:00 GMT', now), 0, 'a date in the past: at once');
    assert.equal(parseRetryAfter('86400', now), MAX_RETRY_AFTER_MS);
    assert.equal(parseRetryAfter(null, now), null);
    assert.equal(parseRetryAfter('soon', now), null);
    assert.equal(parseRetryAfter('-5', now), null);
  });
});
