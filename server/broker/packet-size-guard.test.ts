import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PassThrough } from 'node:stream';
import { guardReads, PacketSizeGuard, PacketTooLarge } from './packet-size-guard.ts';

/** A PUBLISH-like packet of `total` bytes (fixed header included). */
function packet(total: number): Buffer {
  for (let lenBytes = 1; lenBytes <= 4; lenBytes++) {
    const remaining = total - 1 - lenBytes;
    const enc: number[] = [];
    let n = remaining;
    do {
      const b = n % 128;
      n = Math.floor(n / 128);
      enc.push(n > 0 ? b | 0x80 : b);
    } while (n > 0);
    if (enc.length === lenBytes) return Buffer.concat([Buffer.from([0x30, ...enc]), Buffer.alloc(remaining, 1)]);
  }
  throw new Error('no encoding');
}

/** Feeds `data` to the guard in chunks of `chunk` bytes: the bytes passed before the first refusal, and it. */
function feed(guard: PacketSizeGuard, data: Buffer, chunk: number): { passed: number; error?: Error } {
  let passed = 0;
  for (let i = 0; i < data.length; i += chunk) {
    const piece = data.subarray(i, i + chunk);
    const error = guard.check(piece);
    if (error) return { passed, error };
    passed += piece.length;
  }
  return { passed };
}

test('packets up to the maximum pass byte for byte, however the stream is chunked', () => {
  const data = Buffer.concat([packet(2), packet(200), packet(1000), packet(131)]);
  for (const chunk of [1, 3, 64, data.length]) {
    const r = feed(new PacketSizeGuard(1000), data, chunk);
    assert.equal(r.error, undefined);
    assert.equal(r.passed, data.length);
  }
});

test('a header announcing more than the maximum is refused before the body arrives', () => {
  const big = packet(1001);
  const r = feed(new PacketSizeGuard(1000), Buffer.concat([packet(10), big.subarray(0, 4)]), 2);
  assert.ok(r.error instanceof PacketTooLarge);
  assert.equal((r.error as PacketTooLarge).bytes, 1001);
});

test('guardReads: a reader taking the stream with read() gets the packets under the limit, never the refused chunk, and the stream is destroyed', async () => {
  const stream = new PassThrough();
  const refused: Error[] = [];
  guardReads(stream, new PacketSizeGuard(1000), (err) => refused.push(err));
  const got: Buffer[] = [];
  // aedes' way of reading a connection (lib/client.js: read(null), i.e. everything buffered, on 'readable').
  stream.on('readable', () => {
    for (let b = stream.read() as Buffer | null; b; b = stream.read() as Buffer | null) got.push(b);
  });
  const closed = new Promise((resolve) => stream.once('close', resolve));
  const ok = Buffer.concat([packet(10), packet(1000)]);
  stream.write(ok);
  await new Promise((r) => setImmediate(r));
  stream.write(packet(1001).subarray(0, 64)); // the header and the start of the body
  await closed;
  assert.deepEqual(Buffer.concat(got), ok);
  assert.equal(refused.length, 1);
  assert.ok(refused[0] instanceof PacketTooLarge);
  assert.ok(stream.destroyed);
});
