// Device confinement, the same probes on both brokers: the embedded aedes broker (the server checks
// every CONNECT, PUBLISH and SUBSCRIBE itself) and a real Mosquitto 2 whose clients and per-device
// roles the server provisions through the dynamic-security plugin. Where the brokers differ by
// protocol, the test says so: a publish outside a device's topics closes the connection on the
// embedded broker and is acknowledged and dropped by Mosquitto (MQTT 3.1.1); neither delivers it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { DynsecAdmin } from '../server/broker/dynsec-admin.ts';
import { DEVICE_CLIENT_TEXTNAME, deviceRole } from '../server/broker/mosquitto-access.ts';
import { ControlPlane } from '../server/control-plane.ts';
import { createLogger } from '../server/logger.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { waitFor } from '../agent/testing/harness.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { mosquittoConfig, mosquittoSkip, startMosquitto, type TestMosquitto } from './helpers/mosquitto.ts';

const FACTS = { arch: 'arm64', cpus: 4, memoryBytes: 4 * 1024 ** 3, os: 'linux 6.1', agentVersion: '0.1.0' };

type Enrolled = { deviceId: string; mqtt: { password: string } };

function connectDevice(url: string, id: string, password: string, extra: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(url, { clientId: id, username: id, password, reconnectPeriod: 0, connectTimeout: 5000, ...extra });
}

for (const broker of ['embedded', 'mosquitto'] as const) {
  const skip = broker === 'mosquitto' ? mosquittoSkip() : false;
  describe(`device ACL on the ${broker} broker`, { skip }, () => {
    let cp: TestPlane;
    let mosq: TestMosquitto | undefined;
    const clients: MqttClient[] = [];
    const devices: Enrolled[] = [];
    let token = '';

    const enroll = async (t = token): Promise<Enrolled & { status: string }> => {
      const r = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: t, facts: FACTS } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body;
    };
    const track = (c: MqttClient) => (clients.push(c), c.on('error', () => {}), c);

    before(async () => {
      if (broker === 'mosquitto') mosq = await startMosquitto();
      cp = await startControlPlane(mosq ? mosquittoConfig(mosq) : {});
      token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'a' } } })).body.token;
      for (let i = 0; i < 3; i++) devices.push(await enroll());
    });
    after(async () => {
      for (const c of clients) c.end(true);
      await cp?.stop();
      await mosq?.stop();
    });

    test('a device logs in with its own credentials only; a spoofed client id is refused', async () => {
      const [a, b] = devices;
      track(await connectDevice(cp.mqttUrl, a.deviceId, a.mqtt.password)).end();
      await assert.rejects(connectDevice(cp.mqttUrl, a.deviceId, 'wrong-password'), /Bad username or password|Not authorized/i);
      await assert.rejects(connectDevice(cp.mqttUrl, a.deviceId, b.mqtt.password), /Bad username or password|Not authorized/i);
      await assert.rejects(connectDevice(cp.mqttUrl, b.deviceId, a.mqtt.password, { username: a.deviceId }), /Not authorized|Bad username or password|Identifier rejected/i);
    });

    test('subscribe to #, to another device, with wildcards: refused (SUBACK 0x80), the client stays connected', async () => {
      const [a, b] = devices;
      const ca = track(await connectDevice(cp.mqttUrl, a.deviceId, a.mqtt.password));
      for (const filter of ['#', deviceTopic(b.deviceId, 'desired'), 'flotilla/v1/devices/+/desired', `${deviceTopic(a.deviceId, 'cmd')}/#`, deviceTopic(b.deviceId, 'telemetry')]) {
        await assert.rejects(ca.subscribeAsync(filter, { qos: 1 }), /Subscribe error/, filter);
      }
      for (const filter of [deviceTopic(a.deviceId, 'desired'), deviceTopic(a.deviceId, 'cmd')]) {
        const [granted] = await ca.subscribeAsync(filter, { qos: 1 });
        assert.equal(granted.qos, 1, filter);
      }
      assert.ok(ca.connected);
      ca.end();
    });

    test('publishing into another device\'s topics never reaches it', async () => {
      const [a, b] = devices;
      const cb = track(await connectDevice(cp.mqttUrl, b.deviceId, b.mqtt.password));
      const received: string[] = [];
      cb.on('message', (topic) => received.push(topic));
      await cb.subscribeAsync(deviceTopic(b.deviceId, 'cmd'), { qos: 1 });
      const ca = track(await connectDevice(cp.mqttUrl, a.deviceId, a.mqtt.password));
      const closed = new Promise<void>((r) => ca.once('close', () => r()));
      const sent = ca.publishAsync(deviceTopic(b.deviceId, 'cmd'), JSON.stringify({ v: 1, id: 'x', command: 'ping' }), { qos: 1 });
      sent.catch(() => {}); // rejected with 'Connection closed' where the broker cuts the client off
      if (broker === 'embedded') await closed; // aedes: a refused publish closes the connection
      else await sent; // Mosquitto on 3.1.1: acknowledged, then dropped
      // A message B may receive after the probe: B's own cmd published by the server would arrive; a
      // probe that got through would have arrived before it.
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(received, []);
      cb.end();
      ca.end(true);
    });

    test('a forged retained desired (another device\'s, or its own) is never stored', async () => {
      const [a, b] = devices;
      const forged = JSON.stringify({ v: 1, forged: true });
      for (const target of [b.deviceId, a.deviceId]) {
        const ca = track(await connectDevice(cp.mqttUrl, a.deviceId, a.mqtt.password));
        const closed = new Promise<void>((r) => ca.once('close', () => r()));
        const sent = ca.publishAsync(deviceTopic(target, 'desired'), forged, { qos: 1, retain: true });
        sent.catch(() => {});
        if (broker === 'embedded') await closed;
        else await sent;
        ca.end(true);
      }
      for (const d of [b, a]) {
        const c = track(await connectDevice(cp.mqttUrl, d.deviceId, d.mqtt.password, { clean: true, clientId: d.deviceId }));
        const got: string[] = [];
        c.on('message', (_t, payload) => got.push(payload.toString()));
        await c.subscribeAsync(deviceTopic(d.deviceId, 'desired'), { qos: 1 });
        await new Promise((r) => setTimeout(r, 300)); // retained messages follow the SUBACK at once
        assert.ok(!got.includes(forged), `${d.deviceId} got the forged desired state`);
        c.end();
      }
    });

    test('a pending device is refused until approved', async () => {
      const t = await cp.api('POST', '/api/v1/enroll-tokens', { json: { autoApprove: false } });
      const p = await enroll(t.body.token);
      assert.equal(p.status, 'pending');
      await assert.rejects(connectDevice(cp.mqttUrl, p.deviceId, p.mqtt.password), /Not authorized|Bad username or password/i);
      assert.equal((await cp.api('POST', `/api/v1/devices/${p.deviceId}/approve`, { json: {} })).status, 200);
      track(await connectDevice(cp.mqttUrl, p.deviceId, p.mqtt.password)).end();
    });

    test('revocation disconnects the device at once and its credentials stop working', async () => {
      const c = devices[2];
      const client = track(await connectDevice(cp.mqttUrl, c.deviceId, c.mqtt.password));
      const closed = new Promise<void>((r) => client.once('close', () => r()));
      const res = await cp.api('POST', `/api/v1/devices/${c.deviceId}/revoke`);
      assert.equal(res.status, 200);
      await closed;
      await assert.rejects(connectDevice(cp.mqttUrl, c.deviceId, c.mqtt.password), /Not authorized|Bad username or password/i);
    });

    test('device messages reach the server through the broker', async () => {
      const [a] = devices;
      const ca = track(await connectDevice(cp.mqttUrl, a.deviceId, a.mqtt.password));
      await ca.publishAsync(deviceTopic(a.deviceId, 'status'), JSON.stringify({ v: 1, state: 'online', at: new Date().toISOString(), agentVersion: '0.1.0' }), { qos: 1, retain: true });
      await waitFor(async () => (await cp.api('GET', `/api/v1/devices/${a.deviceId}`)).body.online === true, 'device online', 15_000);
      ca.end();
    });
  });
}

describe('Mosquitto: the broker follows the database', { skip: mosquittoSkip() }, () => {
  let mosq: TestMosquitto;
  let cp: TestPlane;
  before(async () => {
    mosq = await startMosquitto();
    cp = await startControlPlane(mosquittoConfig(mosq));
  });
  after(async () => {
    await cp?.stop();
    await mosq?.stop();
  });

  test('each device gets its own client and role; the server its own role', async () => {
    const admin = new DynsecAdmin({ url: mosq.url, ...mosq.admin, logger: createLogger('silent') });
    await admin.start();
    try {
      const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: {} })).body.token;
      const d = (await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } })).body;
      const [client, role, server] = await admin.runOk([
        { command: 'getClient', username: d.deviceId },
        { command: 'getRole', rolename: deviceRole(d.deviceId) },
        { command: 'getClient', username: 'flotilla-server' },
      ]);
      const c = client.data!.client as { clientid: string; textname: string; roles: Array<{ rolename: string }> };
      assert.equal(c.clientid, d.deviceId, 'the client id is pinned to the device id');
      assert.equal(c.textname, DEVICE_CLIENT_TEXTNAME);
      assert.deepEqual(c.roles.map((r) => r.rolename), [deviceRole(d.deviceId)]);
      const acls = (role.data!.role as { acls: Array<{ acltype: string; topic: string }> }).acls.map((a) => `${a.acltype} ${a.topic}`).sort();
      assert.deepEqual(acls, [
        ...['cmd/res', 'reported', 'stats', 'status', 'telemetry'].map((ch) => `publishClientSend ${deviceTopic(d.deviceId, ch as 'stats')}`),
        ...['cmd', 'desired'].map((ch) => `subscribeLiteral ${deviceTopic(d.deviceId, ch as 'cmd')}`),
      ].sort());
      assert.deepEqual((server.data!.client as { roles: Array<{ rolename: string }> }).roles.map((r) => r.rolename), ['flotilla-server']);
    } finally {
      await admin.stop();
    }
  });

  test('a restarted server reconciles: revoked while it was down → client deleted; stale clients removed; approved ones enabled', async () => {
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: {} })).body.token;
    const enroll = async () => (await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } })).body as Enrolled;
    const [keep, gone] = [await enroll(), await enroll()];
    const admin = new DynsecAdmin({ url: mosq.url, ...mosq.admin, logger: createLogger('silent') });
    await admin.start();
    try {
      // Behind the server's back: a client no device backs, and a disabled client of an approved device.
      await admin.runOk([
        { command: 'createClient', username: 'dev_stale00000', password: 'x', textname: DEVICE_CLIENT_TEXTNAME },
        { command: 'disableClient', username: keep.deviceId },
      ]);
      const config = { ...cp.plane.config, httpPort: cp.plane.httpPort }; // cp.api keeps calling the same URL
      await cp.plane.stop();
      // While the server is down, the database says `gone` is revoked (e.g. a restore, or another replica).
      const { openDatabase } = await import('../server/db/client.ts');
      const { devices } = await import('../server/db/schema.ts');
      const { eq } = await import('drizzle-orm');
      const { db, client } = await openDatabase(config.dbUrl);
      await db.update(devices).set({ status: 'revoked' }).where(eq(devices.id, gone.deviceId));
      client.close();
      cp.plane = new ControlPlane(config, createLogger('silent'));
      await cp.plane.start();
      const [stale] = await admin.run([{ command: 'getClient', username: 'dev_stale00000' }]);
      assert.match(stale.error ?? '', /not found/i);
      await assert.rejects(connectDevice(mosq.url, gone.deviceId, gone.mqtt.password), /Not authorized|Bad username or password/i);
      const c = await connectDevice(mosq.url, keep.deviceId, keep.mqtt.password);
      c.end();
    } finally {
      await admin.stop();
    }
  });

  test('enrollment while the broker is unreachable: 503, and nothing is enrolled', async () => {
    const t = await cp.api('POST', '/api/v1/enroll-tokens', { json: { maxUses: 1 } });
    const before = (await cp.api('GET', '/api/v1/devices')).body.devices.length;
    await mosq.halt();
    const r = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: t.body.token, facts: FACTS } });
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'broker_unavailable');
    assert.equal((await cp.api('GET', '/api/v1/devices')).body.devices.length, before, 'no device row without broker credentials');
    await mosq.resume();
    // The token's one use was rolled back with the enrollment: it works once the broker is back.
    const again = await waitFor(async () => {
      const x = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: t.body.token, facts: FACTS } });
      return x.status === 201 ? x : undefined;
    }, 'enrollment after the broker came back', 20_000);
    (await connectDevice(mosq.url, again.body.deviceId, again.body.mqtt.password)).end();
  });
});
