import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PacketSizeGuard, PacketTooLarge } from './packet-size-guard.ts';

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

async function feed(guard: PacketSizeGuard, data: Buffer, chunk: number): Promise<{ passed: number; error?: Error }> {
  let passed = 0;
  guard.on('data', (d: Buffer) => (passed += d.length));
  const error = await new Promise<Error | undefined>((resolve) => {
    guard.once('error', resolve);
    guard.once('end', () => resolve(undefined));
    for (let i = 0; i < data.length; i += chunk) guard.write(data.subarray(i, i + chunk));
    guard.end();
  });
  return { passed, error };
}

test('packets up to the maximum pass byte for byte, however the stream is chunked', async () => {
  const data = Buffer.concat([packet(2), packet(200), packet(1000), packet(131)]);
  for (const chunk of [1, 3, 64, data.length]) {
    const r = await feed(new PacketSizeGuard(1000), data, chunk);
    assert.equal(r.error, undefined);
    assert.equal(r.passed, data.length);
  }
});

test('a header announcing more than the maximum fails the stream before the body arrives', async () => {
  const big = packet(1001);
  const r = await feed(new PacketSizeGuard(1000), Buffer.concat([packet(10), big.subarray(0, 4)]), 2);
  assert.ok(r.error instanceof PacketTooLarge);
  assert.equal((r.error as PacketTooLarge).bytes, 1001);
});
