// SampleCapture against a real HTTP server that answers as scripted: batching, the token bucket,
// the bounded queue, retries (5xx, network, 429 Retry-After), drops (4xx, unsendable inputs) and
// switching off by a new manifest; batches kept on disk across a restart.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { SampleBatch } from '../protocol/messages/samples.ts';
import { waitFor } from './testing/harness.ts';
import { SampleCapture, type CaptureTarget } from './sample-capture.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, body: SampleBatch) => void;

const target = (capture?: { enabled: boolean; maxPerMinute: number; batchSize: number }, version = 1): CaptureTarget =>
  ({
    manifest: { bundle: { id: `b${version}`, name: 'demo', model: { name: 'demo', version } }, agentConfig: capture ? { sampleCapture: capture } : undefined },
    definition: { preprocess: { type: 'tabular', input: 'x', features: [{ name: 'a', dtype: 'float32' }, { name: 'b', dtype: 'float32' }] }, postprocess: { task: 'classification' } },
  }) as unknown as CaptureTarget;
const offer = (a: unknown) => ({ inputs: a, outputs: { predictedClass: 'x', confidence: 0.5 } });

describe('SampleCapture', () => {
  let server: Server;
  let url: string;
  let handler: Handler;
  const received: SampleBatch[] = [];
  const captures: SampleCapture[] = [];
  const make = (o: Partial<ConstructorParameters<typeof SampleCapture>[0]> = {}) => {
    const c = new SampleCapture({ serverUrl: url, deviceId: 'dev_test0001', secret: 's3cret', logger: pino({ level: 'silent' }), backoff: { minMs: 10, maxMs: 40 }, ...o });
    captures.push(c);
    return c;
  };

  before(async () => {
    server = createServer((req, res) => {
      let text = '';
      req.on('data', (d) => (text += d));
      req.on('end', () => {
        assert.equal(req.headers.authorization, 'Basic ' + Buffer.from('dev_test0001:s3cret').toString('base64'));
        assert.equal(req.url, '/api/v1/devices/dev_test0001/samples');
        const body = SampleBatch.parse(JSON.parse(text));
        handler(req, res, body);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const c of captures) await c.stop();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const ok: Handler = (_q, res, body) => {
    received.push(body);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ accepted: body.samples.length, duplicates: 0 }));
  };

  test('off unless the manifest enables it; full batches go at once, named by feature order', async () => {
    handler = ok;
    received.length = 0;
    const c = make();
    c.configure(target());
    assert.equal(c.offer(offer({ a: 1, b: 2 })), false);
    c.configure(target({ enabled: true, maxPerMinute: 100, batchSize: 2 }));
    assert.ok(c.offer(offer({ a: 1, b: 2, nested: { x: 1 } })));
    assert.ok(c.offer(offer([3, 4])));
    await waitFor(() => c.status().uploaded === 2, 'one batch answered');
    assert.equal(received.length, 1);
    assert.deepEqual(received[0].samples.map((s) => s.inputs), [{ a: 1, b: 2 }, { a: 3, b: 4 }]);
    assert.deepEqual(received[0].model, { name: 'demo', version: 1 });
  });

  test('the token bucket keeps to maxPerMinute (a minute of burst), refilling over time', () => {
    let now = 0;
    const c = make({ now: () => now });
    c.configure(target({ enabled: true, maxPerMinute: 5, batchSize: 1000 }));
    for (let i = 0; i < 5; i++) assert.ok(c.offer(offer({ a: i, b: 0 })));
    assert.equal(c.offer(offer({ a: 9, b: 0 })), false);
    now += 12_000; // one token
    assert.ok(c.offer(offer({ a: 9, b: 0 })));
    assert.equal(c.offer(offer({ a: 9, b: 0 })), false);
    assert.equal(c.status().dropped.rate, 2);
  });

  test('5xx and network errors are retried; 429 waits for Retry-After; other 4xx drop the batch', async () => {
    received.length = 0;
    const script = [503, 429, 400, 200];
    const times: number[] = [];
    handler = (q, res, body) => {
      times.push(Date.now());
      const status = script.shift() ?? 200;
      if (status === 200) return ok(q, res, body);
      if (status === 503 && times.length === 1) return res.destroy(); // a dropped connection first
      res.writeHead(status, status === 429 ? { 'retry-after': '1' } : {}).end('{}');
    };
    script.unshift(503);
    const c = make();
    c.configure(target({ enabled: true, maxPerMinute: 100, batchSize: 1 }));
    c.offer(offer({ a: 1, b: 1 }));
    await waitFor(() => received.length === 1 || c.status().dropped.rejected === 1, 'first batch settled', 5000);
    // network error → retry → 503 → retry → 429 (1 s) → retry → 400: dropped.
    assert.equal(c.status().dropped.rejected, 1);
    assert.ok(times[3] - times[2] >= 950, `Retry-After honoured: ${times[3] - times[2]} ms`);
    c.offer(offer({ a: 2, b: 2 }));
    await waitFor(() => received.length === 1, 'next batch goes through');
    assert.deepEqual(received[0].samples[0].inputs, { a: 2, b: 2 });
  });

  test('bounded queue while the server hangs; a manifest turning capture off drops the queue and the upload in flight', async () => {
    handler = () => {}; // never answers
    const c = make();
    c.configure(target({ enabled: true, maxPerMinute: 6000, batchSize: 2 }));
    for (let i = 0; i < 30; i++) c.offer(offer({ a: i, b: i }));
    const s = c.status();
    assert.equal(s.queued, 20, 'room for 10 batches besides the one in flight');
    assert.equal(s.dropped.queue_full, 8);
    c.configure(target({ enabled: false, maxPerMinute: 1, batchSize: 1 }));
    await waitFor(() => c.status().dropped.disabled === 22, 'queue and in-flight batch dropped');
    assert.equal(c.status().enabled, false);
    assert.equal(c.offer(offer({ a: 1, b: 1 })), false);
  });

  test('rows and images that cannot be samples are dropped and counted, PNG bytes go as base64', async () => {
    handler = ok;
    received.length = 0;
    const c = make({ flushIntervalMs: 50 });
    c.start();
    c.configure(target({ enabled: true, maxPerMinute: 100, batchSize: 10 }));
    const png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]);
    const webp = new TextEncoder().encode('RIFF....WEBPVP8 ');
    for (const inputs of [[1], { x: { y: 1 } }, webp, png]) c.offer(offer(inputs));
    await waitFor(() => received.length === 1, 'partial batch flushed by the timer');
    assert.deepEqual(received[0].samples.map((s) => s.inputs), [{ image: Buffer.from(png).toString('base64') }]);
    assert.equal(c.status().dropped.unsupported, 3);
  });

  test('batches queued while the server is unreachable survive a restart (clean stop flushes) and arrive once', async () => {
    const storeDir = mkdtempSync(path.join(tmpdir(), 'flotilla-samples-'));
    try {
      const first = make({ serverUrl: 'http://127.0.0.1:1', storeDir, flushIntervalMs: 60_000 });
      await first.start();
      first.configure(target({ enabled: true, maxPerMinute: 100, batchSize: 2 }));
      for (let i = 0; i < 5; i++) assert.ok(first.offer(offer({ a: i, b: 10 - i })));
      assert.equal(first.offer(offer(new Uint8Array(1024 * 1024 + 1))), false);
      assert.equal(first.status().dropped.too_large, 1);
      await waitFor(() => first.status().stored?.batches === 2, 'two full batches on disk');
      await first.stop(); // the fifth sample goes to disk as a partial batch
      assert.equal(readdirSync(storeDir).length, 3);
      assert.equal(first.status().uploaded, 0);

      handler = ok;
      received.length = 0;
      const second = make({ storeDir });
      await second.start();
      assert.equal(second.status().stored?.batches, 3);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(received.length, 0, 'nothing is sent before the manifest turns capture on');
      second.configure(target({ enabled: true, maxPerMinute: 100, batchSize: 2 }));
      await waitFor(() => second.status().uploaded === 5, 'stored batches uploaded after the restart');
      const got = received.flatMap((b) => b.samples);
      assert.deepEqual(got.map((x) => x.inputs), [0, 1, 2, 3, 4].map((i) => ({ a: i, b: 10 - i })));
      assert.equal(new Set(got.map((x) => x.sampleId)).size, 5);
      await second.stop();
      assert.deepEqual(readdirSync(storeDir), []);

      // A third start has nothing left to send: each sample arrived once.
      const third = make({ storeDir });
      await third.start();
      third.configure(target({ enabled: true, maxPerMinute: 100, batchSize: 2 }));
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(received.flatMap((b) => b.samples).length, 5);
      await third.stop();
    } finally {
      rmSync(storeDir, { recursive: true, force: true });
    }
  });

  test('a manifest turning capture off drops the stored batches too', async () => {
    const storeDir = mkdtempSync(path.join(tmpdir(), 'flotilla-samples-'));
    try {
      const c = make({ serverUrl: 'http://127.0.0.1:1', storeDir });
      await c.start();
      c.configure(target({ enabled: true, maxPerMinute: 100, batchSize: 1 }));
      for (let i = 0; i < 3; i++) c.offer(offer({ a: i, b: i }));
      await waitFor(() => c.status().stored?.batches === 3, 'three batches on disk');
      c.configure(target({ enabled: false, maxPerMinute: 1, batchSize: 1 }));
      await waitFor(() => c.status().stored?.batches === 0 && c.status().dropped.disabled === 3, 'stored batches dropped');
      await c.stop();
      assert.deepEqual(readdirSync(storeDir), []);
    } finally {
      rmSync(storeDir, { recursive: true, force: true });
    }
  });
});
