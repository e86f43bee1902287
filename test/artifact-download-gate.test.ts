// The artifact route sheds load (server/artifacts/download-gate.ts): a real control plane limited to
// one download at a time answers a second one 503 with Retry-After and `server_busy`, and frees the
// slot when the first body ends or its client goes away. To keep a download in flight on demand the
// test swaps the plane's artifact reads for a stream it releases itself (the route, gate and HTTP
// server are the real ones).
import assert from 'node:assert/strict';
import http from 'node:http';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../agent/testing/harness.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

/** A GET that resolves at the response's headers; the body is left to the caller. */
function get(url: string, token: string): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => http.get(url, { headers: { authorization: `Bearer ${token}` } }, resolve).on('error', reject));
}

async function drain(res: http.IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of res) text += chunk;
  return text;
}

describe('artifact downloads: load shedding', { timeout: 60_000 }, () => {
  let cp: TestPlane;
  let url: string;
  /** The artifact reads in progress, each ended early by `finish`. */
  const held: Array<{ finish(): void }> = [];

  before(async () => {
    cp = await startControlPlane({ artifactMaxDownloads: 1, artifactRetryAfterS: 7 });
    const pushed = await cp.api('POST', '/api/v1/models/gate/versions', { body: gemmModel({ seed: 1 }) as BodyInit });
    assert.equal(pushed.status, 201, JSON.stringify(pushed.body));
    url = `${cp.url}/artifacts/sha256/${pushed.body.sha256}`;
    const store = cp.plane.store;
    const realRead = store.readStream.bind(store);
    // The artifact's real bytes: one now, the rest once `finish` is called — or, unfinished, one byte
    // every 200 ms (278 bytes: ≈ 55 s, longer than the test waits, so only the route noticing that the
    // client went away frees the slot in time).
    store.readStream = (hex, range) => {
      let finish = () => {};
      const done = new Promise<boolean>((r) => (finish = () => r(true)));
      held.push({ finish });
      return Readable.from(
        (async function* () {
          const chunks: Buffer[] = [];
          for await (const c of realRead(hex, range)) chunks.push(c as Buffer);
          const bytes = Buffer.concat(chunks);
          yield bytes.subarray(0, 1);
          for (let i = 1; i < bytes.length; i++) {
            if (await Promise.race([done, new Promise<boolean>((r) => setTimeout(() => r(false), 200))])) {
              yield bytes.subarray(i);
              return;
            }
            yield bytes.subarray(i, i + 1);
          }
        })(),
      );
    };
  });
  after(async () => {
    for (const h of held) h.finish();
    await cp?.stop();
  });

  test('past the limit a download gets 503 + Retry-After; the slot frees when the body ends', async () => {
    const first = await get(url, cp.adminToken);
    assert.equal(first.statusCode, 200);
    const second = await get(url, cp.adminToken);
    assert.equal(second.statusCode, 503);
    assert.equal(second.headers['retry-after'], '7');
    const body = JSON.parse(await drain(second));
    assert.equal(body.error.code, 'server_busy');
    assert.equal(body.error.details.retryAfterS, 7);

    held.at(-1)!.finish();
    await drain(first);
    // The slot is released as the stream ends, just after the client saw the end: poll.
    await waitFor(async () => {
      const res = await get(url, cp.adminToken);
      if (res.statusCode === 200) held.at(-1)!.finish();
      await drain(res);
      return res.statusCode === 200;
    }, 'a download admitted again', 20_000, 100);
  });

  test('a client that goes away mid-download frees its slot', async () => {
    const first = await get(url, cp.adminToken);
    assert.equal(first.statusCode, 200);
    const refused = await get(url, cp.adminToken);
    assert.equal(refused.statusCode, 503);
    await drain(refused);
    first.destroy(); // the device lost its connection; the read behind it is never finished by the test
    await waitFor(async () => {
      const res = await get(url, cp.adminToken);
      if (res.statusCode === 200) held.at(-1)!.finish();
      await drain(res);
      return res.statusCode === 200;
    }, 'the abandoned slot released', 20_000, 100);
  });
});
