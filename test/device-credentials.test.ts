// Device credentials after the move from scrypt to sha256 (issue 18), over real HTTP and real MQTT:
// a device enrolled before the change (scrypt hash stored) still connects and is migrated, a wrong
// secret is refused, revocation kicks and refuses at once, and the broker's connect cap answers
// "server unavailable" while agents that back off still get in.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eq } from 'drizzle-orm';
import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import { MqttSession } from '../agent/mqtt-session.ts';
import { scryptHash } from '../server/auth/secrets.ts';
import { devices } from '../server/db/schema.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';

const FACTS = { arch: 'arm64', cpus: 4, memoryBytes: 4 * 1024 ** 3, os: 'linux 6.1', agentVersion: '0.1.0' };

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function connectDevice(url: string, id: string, password: string): Promise<MqttClient> {
  return mqtt.connectAsync(url, { clientId: id, username: id, password, reconnectPeriod: 0, connectTimeout: 10_000, protocolVersion: 4 });
}

interface Enrolled {
  deviceId: string;
  mqtt: { password: string };
}

async function enrollMany(cp: TestPlane, n: number): Promise<Enrolled[]> {
  const t = await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'storm' }, autoApprove: true } });
  assert.equal(t.status, 201, JSON.stringify(t.body));
  const out: Enrolled[] = [];
  for (let i = 0; i < n; i++) {
    const r = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: t.body.token, facts: FACTS } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    out.push(r.body);
  }
  return out;
}

/** What a row enrolled before the change holds: an scrypt hash of the same secret. */
async function makeLegacy(cp: TestPlane, d: Enrolled): Promise<string> {
  const legacy = await scryptHash(d.mqtt.password);
  await cp.plane.db.update(devices).set({ credentialHash: legacy }).where(eq(devices.id, d.deviceId));
  return legacy;
}

const storedHash = async (cp: TestPlane, id: string) =>
  (await cp.plane.db.select({ h: devices.credentialHash }).from(devices).where(eq(devices.id, id)))[0].h;

describe('device credentials: sha256, migration from scrypt, revocation', () => {
  let cp: TestPlane;
  let fleet: Enrolled[];
  const clients: MqttClient[] = [];

  before(async () => {
    cp = await startControlPlane();
    fleet = await enrollMany(cp, 3);
  });
  after(async () => {
    for (const c of clients) c.end(true);
    await cp.stop();
  });

  test('new enrollments store the fast hash, never the secret', async () => {
    const h = await storedHash(cp, fleet[0].deviceId);
    assert.match(h, /^sha256\$/);
    assert.ok(!h.includes(fleet[0].mqtt.password));
  });

  test('a device enrolled before the change (scrypt hash) connects with its old secret and is migrated', async () => {
    const d = fleet[1];
    const legacy = await makeLegacy(cp, d);
    const c = await connectDevice(cp.mqttUrl, d.deviceId, d.mqtt.password);
    clients.push(c);
    assert.ok(c.connected);
    const migrated = await storedHash(cp, d.deviceId);
    assert.notEqual(migrated, legacy);
    assert.match(migrated, /^sha256\$/);
    c.end(true);
    // The migrated row still accepts the same secret, over MQTT and over HTTP (Basic), and nothing else.
    const again = await connectDevice(cp.mqttUrl, d.deviceId, d.mqtt.password);
    clients.push(again);
    assert.ok(again.connected);
    again.end(true);
    const basic = (secret: string) => ({ authorization: `Basic ${Buffer.from(`${d.deviceId}:${secret}`).toString('base64')}` });
    assert.equal((await cp.api('GET', '/api/v1/predictions', { token: null, headers: basic('fld_wrong') })).status, 401);
    assert.notEqual((await cp.api('GET', '/api/v1/predictions', { token: null, headers: basic(d.mqtt.password) })).status, 401);
  });

  test('a wrong secret is refused, for the fast hash and for a legacy hash (which then stays as it was)', async () => {
    const [fast, , legacyDev] = fleet;
    await assert.rejects(connectDevice(cp.mqttUrl, fast.deviceId, fast.mqtt.password + 'x'), /Bad username or password/i);
    await assert.rejects(connectDevice(cp.mqttUrl, fast.deviceId, fleet[1].mqtt.password), /Bad username or password/i);
    const legacy = await makeLegacy(cp, legacyDev);
    await assert.rejects(connectDevice(cp.mqttUrl, legacyDev.deviceId, 'fld_not-the-secret'), /Bad username or password/i);
    assert.equal(await storedHash(cp, legacyDev.deviceId), legacy);
  });

  test('revocation kicks a connected device at once and refuses it afterwards', async () => {
    const d = fleet[0];
    const c = await connectDevice(cp.mqttUrl, d.deviceId, d.mqtt.password);
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    const res = await cp.api('POST', `/api/v1/devices/${d.deviceId}/revoke`);
    assert.equal(res.body.status, 'revoked');
    await closed;
    await assert.rejects(connectDevice(cp.mqttUrl, d.deviceId, d.mqtt.password), /Not authorized/i);
  });

  test('presence is written (batched) on connect and disconnect', async () => {
    const d = fleet[1];
    const c = await connectDevice(cp.mqttUrl, d.deviceId, d.mqtt.password);
    await waitFor('online', async () => (await cp.api('GET', `/api/v1/devices/${d.deviceId}`)).body.online === true);
    c.end(true);
    await waitFor('offline', async () => (await cp.api('GET', `/api/v1/devices/${d.deviceId}`)).body.online === false);
  });
});

describe('connect cap: CONNACK 3 beyond the limit, agents back off and get in', () => {
  let cp: TestPlane;
  const sessions: MqttSession[] = [];

  before(async () => {
    cp = await startControlPlane({ mqttMaxPendingConnects: 1 });
  });
  after(async () => {
    await Promise.all(sessions.map((s) => s.stop()));
    await cp.stop();
  });

  test('a burst of legacy-hash devices (slow checks) is shed with "server unavailable"; every agent gets in after backing off', async () => {
    const fleet = await enrollMany(cp, 8);
    // Legacy hashes make each check take tens of ms, so with a cap of 1 the burst cannot all be admitted.
    for (const d of fleet) await makeLegacy(cp, d);
    const busyLogs: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void (/broker busy/.test(line) && busyLogs.push(line)) });
    for (const d of fleet) {
      const s = new MqttSession({
        url: cp.mqttUrl,
        deviceId: d.deviceId,
        password: d.mqtt.password,
        agentVersion: '0.1.0',
        logger,
        reconnect: { minMs: 50, maxMs: 1000 },
        onDesired() {},
        onCommand() {},
      });
      sessions.push(s);
    }
    for (const s of sessions) s.start(); // all at once
    await waitFor('every agent connected', async () => sessions.every((s) => s.connected), 60_000);
    const metrics = await fetch(`${cp.url}/metrics`).then((r) => r.text());
    const busy = Number(/flotilla_mqtt_refused_total\{kind="busy"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    assert.ok(busy > 0, 'the broker shed some connects');
    assert.ok(busyLogs.length > 0, 'agents saw CONNACK 3 and backed off');
    for (const d of fleet) assert.match(await storedHash(cp, d.deviceId), /^sha256\$/);
    // The API stays up meanwhile and afterwards.
    assert.equal((await cp.api('GET', '/healthz', { token: null })).status, 200);
  });
});
