// Bounded MQTT input on the embedded broker, over real TCP: an oversize packet closes the connection
// before its body is buffered; one device flooding telemetry gets its excess dropped (and counted),
// is disconnected once it persists and refused while backing off; the server stays healthy throughout.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { deviceTopic } from '../protocol/topics.ts';
import { telemetry } from '../server/db/schema.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { telemetryMessage } from './helpers/device-stats.ts';

const MB = 1024 ** 2;

function metricValue(text: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{(.*)\} (\S+)$/.exec(line);
    if (m && m[1] === name && want.every((w) => m[2].split(',').includes(w))) return Number(m[3]);
  }
  return 0;
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('MQTT limits on the embedded broker', () => {
  let cp: TestPlane;
  const clients: MqttClient[] = [];
  const limits = { maxPacketBytes: 256 * 1024, ratePerS: 5, burst: 50, strikes: 200, strikeWindowMs: 60_000, backoffMs: 60_000 };
  const metrics = async () => (await fetch(`${cp.url}/metrics`)).text();
  const healthy = async () => (await fetch(`${cp.url}/healthz`)).status === 200;

  async function enroll(): Promise<{ id: string; password: string }> {
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'lab' } } })).body.token;
    const r = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: { arch: 'x64', cpus: 2, memoryBytes: 1e9, os: 'linux', agentVersion: '0.1.0' } } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return { id: r.body.deviceId, password: r.body.mqtt.password };
  }
  async function connect(d: { id: string; password: string }): Promise<MqttClient> {
    const c = await mqtt.connectAsync(cp.mqttUrl, { clientId: d.id, username: d.id, password: d.password, reconnectPeriod: 0, connectTimeout: 5000 });
    clients.push(c);
    return c;
  }

  before(async () => {
    cp = await startControlPlane({ ingestFlushMs: 50, mqttLimits: limits });
  });
  after(async () => {
    for (const c of clients) c.end(true);
    await cp.stop();
  });

  test('a packet over the maximum size closes the connection before its body is buffered; the server stays healthy', async () => {
    const device = await enroll();
    const client = await connect(device);
    const closed = new Promise<void>((resolve) => client.stream.once('close', () => resolve()));
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    // A PUBLISH announcing 100 MB, streamed from one reused 1 MB chunk (the test shares the server's process,
    // so the client must not hold the payload itself): the server has to close the link long before the end.
    const announced = 100 * MB;
    const header = [0x30];
    for (let n = announced; ; ) {
      const b = n % 128;
      n = Math.floor(n / 128);
      header.push(n > 0 ? b | 0x80 : b);
      if (n === 0) break;
    }
    const chunk = Buffer.alloc(MB, 0x61);
    let sent = 0;
    let open = true;
    void closed.then(() => (open = false));
    client.stream.write(Buffer.from(header));
    while (open && sent < announced) {
      const ok = client.stream.write(chunk);
      sent += chunk.length;
      if (!ok) await Promise.race([new Promise((r) => client.stream.once('drain', r)), closed]);
    }
    await closed;
    assert.ok(sent < 50 * MB, `the server read ${sent / MB} MB of a 100 MB packet before closing`);
    const grown = (process.memoryUsage().rss - rssBefore) / MB;
    assert.ok(grown < 60, `rss grew by ${grown.toFixed(0)} MB`);
    assert.ok(await healthy());
    const text = await metrics();
    assert.equal(metricValue(text, 'flotilla_mqtt_messages_dropped_total', { reason: 'oversize' }), 1);
    assert.equal(metricValue(text, 'flotilla_mqtt_limit_disconnects_total', { reason: 'oversize' }), 1);
    // A message under the limit still goes through on a new connection.
    const again = await connect(device);
    await again.publishAsync(deviceTopic(device.id, 'telemetry'), JSON.stringify(telemetryMessage({ deviceId: device.id, seq: 1, at: new Date(), inferences: 5 })), { qos: 1 });
    await until('the small message stored', async () => (await cp.plane.db.select().from(telemetry)).some((r) => r.deviceId === device.id));
  });

  test('a flood from one device: excess dropped and counted, rows bounded, device disconnected and refused, /healthz responsive', async () => {
    const flooder = await enroll();
    const neighbour = await enroll();
    const client = await connect(flooder);
    const calm = await connect(neighbour);
    const disconnected = new Promise<void>((resolve) => client.stream.once('close', () => resolve()));
    const rowsOf = async (id: string) => (await cp.plane.db.select({ deviceId: telemetry.deviceId }).from(telemetry)).filter((r) => r.deviceId === id).length;
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    const started = Date.now();
    // 10,000 valid, distinct telemetry reports at QoS 0 as fast as the socket takes them.
    const at = new Date();
    let written = 0;
    const flood = (async () => {
      for (let seq = 1; seq <= 10_000 && !client.stream.destroyed; seq++) {
        client.publish(deviceTopic(flooder.id, 'telemetry'), JSON.stringify(telemetryMessage({ deviceId: flooder.id, seq, at, inferences: 1 })), { qos: 0 });
        written++;
        if (seq % 200 === 0) await new Promise((r) => setImmediate(r));
      }
    })();
    // While the flood runs, health answers and a well-behaved neighbour is served.
    assert.ok(await healthy());
    await calm.publishAsync(deviceTopic(neighbour.id, 'telemetry'), JSON.stringify(telemetryMessage({ deviceId: neighbour.id, seq: 1, at, inferences: 3 })), { qos: 1 });
    await flood;
    await disconnected; // 200 strikes within a minute: the broker closes the flooder's connection
    const elapsedS = (Date.now() - started) / 1000;
    await until('the neighbour stored', async () => (await rowsOf(neighbour.id)) === 1);
    await new Promise((r) => setTimeout(r, 300)); // let ingest flush whatever got through
    const stored = await rowsOf(flooder.id);
    const bound = limits.burst + Math.ceil(elapsedS * limits.ratePerS) + 1;
    assert.ok(stored <= bound, `${stored} of ${written} rows stored; the bucket allows ${bound}`);
    assert.ok(stored >= limits.burst, `the burst (${limits.burst}) is served: ${stored}`);
    const text = await metrics();
    const dropped = metricValue(text, 'flotilla_mqtt_messages_dropped_total', { channel: 'telemetry', reason: 'rate' });
    assert.ok(dropped >= limits.strikes, `dropped ${dropped}`);
    assert.equal(metricValue(text, 'flotilla_mqtt_limit_disconnects_total', { reason: 'rate' }), 1);
    const grown = (process.memoryUsage().rss - rssBefore) / MB;
    assert.ok(grown < 100, `rss grew by ${grown.toFixed(0)} MB`);
    // Backing off: the device's next connect is refused (CONNACK 3, server unavailable) and counted.
    await assert.rejects(
      mqtt.connectAsync(cp.mqttUrl, { clientId: flooder.id, username: flooder.id, password: flooder.password, reconnectPeriod: 0, connectTimeout: 5000 }),
      /unavailable/i,
    );
    assert.equal(metricValue(await metrics(), 'flotilla_mqtt_refused_total', { kind: 'backoff' }), 1);
    assert.ok(await healthy());
    assert.ok(calm.connected, 'the neighbour was not disconnected');
  });
});
