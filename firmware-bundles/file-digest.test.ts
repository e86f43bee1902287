import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { DigestAccumulator, FileDigestError, hashStream, verifyFile, verifyStream } from './file-digest.ts';

const dir = await mkdtemp(join(tmpdir(), 'flotilla-digest-'));
after(() => rm(dir, { recursive: true, force: true }));
const content = randomBytes(200_000);
const expected = { sha256: createHash('sha256').update(content).digest('hex'), size: content.length };

test('a file matching sha256 and size verifies', async () => {
  const path = join(dir, 'ok.bin');
  await writeFile(path, content);
  const r = await verifyFile(path, expected);
  assert.ok(r.ok);
  assert.deepEqual(r.actual, expected);
});

test('one tampered byte -> HASH_MISMATCH', async () => {
  const tampered = Buffer.from(content);
  tampered[123_456] ^= 0x01;
  const path = join(dir, 'tampered.bin');
  await writeFile(path, tampered);
  const r = await verifyFile(path, expected);
  assert.equal(r.ok ? 'ok' : r.reason, 'HASH_MISMATCH');
  const s = await verifyStream(Readable.from([tampered]), expected);
  assert.equal(s.ok ? 'ok' : s.reason, 'HASH_MISMATCH');
});

test('truncated file or stream -> SIZE_MISMATCH', async () => {
  const path = join(dir, 'short.bin');
  await writeFile(path, content.subarray(0, content.length - 1));
  const r = await verifyFile(path, expected);
  assert.equal(r.ok ? 'ok' : r.reason, 'SIZE_MISMATCH');
  const s = await verifyStream(Readable.from([content.subarray(0, 1000)]), expected);
  assert.equal(s.ok ? 'ok' : s.reason, 'SIZE_MISMATCH');
});

/** A source that never ends; counts what was pulled and whether it was shut down. */
function endless(chunk = 64 * 1024) {
  const state = { pulled: 0, closed: false };
  async function* gen() {
    try {
      for (;;) {
        state.pulled += chunk;
        yield Buffer.alloc(chunk, 7);
        // Yield to the event loop like real I/O does, so the test timeout can fire if the cap is missing.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      state.closed = true;
    }
  }
  return { state, source: gen() };
}

// The timeout turns a missing cap (reading forever) into a failure instead of a hung run.
test('endless data -> TOO_LARGE as soon as the cap is passed, and the source is closed', { timeout: 10_000 }, async () => {
  const { state, source } = endless();
  await assert.rejects(hashStream(source, { maxBytes: 1_000_000 }), (e: unknown) => e instanceof FileDigestError && e.code === 'TOO_LARGE' && e.bytesSeen <= 1_000_000 + 64 * 1024);
  assert.ok(state.pulled <= 1_000_000 + 64 * 1024, `pulled ${state.pulled}`);
  assert.equal(state.closed, true);

  const file = endless();
  const r = await verifyStream(file.source, { sha256: expected.sha256, size: 300_000 });
  assert.equal(r.ok ? 'ok' : r.reason, 'SIZE_MISMATCH');
  assert.ok(file.state.pulled <= 300_000 + 64 * 1024 && file.state.closed);
});

test('a resumed download hashes the same across two sources', async () => {
  const path = join(dir, 'part.bin');
  await writeFile(path, content.subarray(0, 70_001));
  const acc = new DigestAccumulator(expected.size);
  for await (const chunk of createReadStream(path)) acc.update(chunk as Buffer);
  for await (const chunk of Readable.from([content.subarray(70_001)])) acc.update(chunk as Buffer);
  assert.ok(acc.check(expected).ok);
  assert.throws(() => new DigestAccumulator(10).update(Buffer.alloc(11)), FileDigestError);
});
