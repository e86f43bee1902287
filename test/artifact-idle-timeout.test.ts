// A download whose client stops reading must not hold its download slot (server/artifacts/idle-download.ts):
// a real control plane limited to one download at a time, a raw TCP client that sends the request, takes
// the first bytes and then stops reading (the kernel buffers fill, the server's writes stall). After
// FLOTILLA_ARTIFACT_IDLE_TIMEOUT_S the server closes that connection, counts it, and admits the next
// download. The artifact's reads are swapped for a long stream of zeros (256 MiB declared) so the buffers
// between server and client fill whatever their size; the route, gate and HTTP server are the real ones.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../agent/testing/harness.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

const SIZE = 256 * 1024 * 1024;

/** Resolves at the response's headers and destroys it (the body is not wanted). */
function statusOf(url: string, token: string): Promise<number> {
  return new Promise((resolve, reject) =>
    http
      .get(url, { headers: { authorization: `Bearer ${token}` } }, (res) => {
        resolve(res.statusCode!);
        res.destroy();
      })
      .on('error', reject),
  );
}

describe('artifact downloads: a client that stops reading', { timeout: 90_000 }, () => {
  let cp: TestPlane;
  let hex: string;

  before(async () => {
    cp = await startControlPlane({ artifactMaxDownloads: 1, artifactIdleTimeoutS: 1 });
    const pushed = await cp.api('POST', '/api/v1/models/idle/versions', { body: gemmModel({ seed: 1 }) as BodyInit });
    assert.equal(pushed.status, 201, JSON.stringify(pushed.body));
    hex = pushed.body.sha256;
    const store = cp.plane.store;
    store.size = async () => SIZE;
    store.readStream = (_hex, range) => {
      const end = (range?.end ?? SIZE - 1) + 1;
      const chunk = Buffer.alloc(64 * 1024);
      return Readable.from(
        (function* () {
          for (let at = range?.start ?? 0; at < end; at += chunk.length) yield chunk.subarray(0, Math.min(chunk.length, end - at));
        })(),
      );
    };
  });
  after(async () => {
    await cp?.stop();
  });

  test('is disconnected after the idle timeout, counted, and its slot serves the next download', async () => {
    const { port } = new URL(cp.url);
    const stalled = net.connect(Number(port), '127.0.0.1');
    let closed = false;
    stalled.on('close', () => (closed = true));
    stalled.on('error', () => {});
    await new Promise<void>((resolve) => stalled.once('connect', resolve));
    stalled.write(`GET /artifacts/sha256/${hex} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${cp.adminToken}\r\n\r\n`);
    const head = await new Promise<string>((resolve) => stalled.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
    assert.match(head, /^HTTP\/1\.1 200/);
    stalled.pause(); // stops reading: the client's receive buffer and then the server's send buffer fill

    assert.equal(await statusOf(`${cp.url}/artifacts/sha256/${hex}`, cp.adminToken), 503, 'the stalled download holds the only slot');
    const idleClosed = async () => (await (await fetch(`${cp.url}/metrics`)).text()).match(/^flotilla_artifact_downloads_idle_closed_total (\d+)/m)?.[1];
    await waitFor(async () => (await idleClosed()) === '1', 'the stalled download counted as closed for idleness', 60_000, 100);
    await waitFor(async () => (await statusOf(`${cp.url}/artifacts/sha256/${hex}`, cp.adminToken)) === 200, 'the freed slot admitting a download', 20_000, 100);
    // The stalled client, reading again, finds its connection closed before the body's end.
    let received = head.length;
    stalled.on('data', (d: Buffer) => (received += d.length));
    stalled.resume();
    await waitFor(() => closed, 'the stalled connection seen closed', 30_000, 50);
    assert.ok(received < SIZE, `the connection ended after ${received} of ${SIZE} bytes`);
  });
});
