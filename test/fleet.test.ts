// Enrollment, devices, cohorts, and the embedded broker's authentication, ACL and presence,
// over real HTTP and real MQTT (mqtt.js clients over TCP).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { deviceTopic } from '../protocol/topics.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';

const FACTS = { arch: 'arm64', cpus: 4, memoryBytes: 4 * 1024 ** 3, os: 'linux 6.1', agentVersion: '0.1.0' };

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function connectDevice(url: string, id: string, password: string, extra: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(url, { clientId: id, username: id, password, reconnectPeriod: 0, connectTimeout: 3000, ...extra });
}

describe('fleet: enrollment, devices, cohorts, broker', () => {
  let cp: TestPlane;
  const clients: MqttClient[] = [];
  let enrollToken: string;
  const enrolled: Array<{ deviceId: string; mqtt: { password: string; url: string } }> = [];

  before(async () => {
    cp = await startControlPlane();
  });
  after(async () => {
    for (const c of clients) c.end(true);
    await cp.stop();
  });

  const enroll = (token: string, facts: object = FACTS) => cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts } });

  test('enrollment tokens hand out identities with labels and MQTT credentials', async () => {
    const t = await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'berlin', hw: 'rpi4' }, ttlSeconds: 3600, maxUses: 3 } });
    assert.equal(t.status, 201);
    enrollToken = t.body.token;
    for (let i = 0; i < 3; i++) {
      const r = await enroll(enrollToken, { ...FACTS, hostname: `gw-${i}` });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.match(r.body.deviceId, /^dev_[0-9a-f]{20}$/);
      assert.equal(r.body.status, 'approved');
      assert.deepEqual(r.body.labels, { site: 'berlin', hw: 'rpi4' });
      assert.equal(r.body.mqtt.username, r.body.deviceId);
      assert.equal(r.body.mqtt.url, cp.mqttUrl);
      enrolled.push(r.body);
    }
    const fourth = await enroll(enrollToken);
    assert.equal(fourth.status, 401);
    assert.match(fourth.body.error.message, /no uses left/);
    const dev = await cp.api('GET', `/api/v1/devices/${enrolled[0].deviceId}`);
    assert.equal(dev.body.facts.arch, 'arm64');
    assert.equal(dev.body.name, 'gw-0');
    assert.equal(dev.body.credentialHash, undefined, 'the credential hash never leaves the server');
  });

  test('bad enrollment input: unknown token, bad facts, malformed JSON', async () => {
    assert.equal((await enroll('fle_nope')).status, 401);
    const badFacts = await enroll(enrollToken, { arch: 'arm64' });
    assert.equal(badFacts.status, 400);
    assert.equal(badFacts.body.error.code, 'invalid_request');
    const malformed = await cp.api('POST', '/api/v1/enroll', { token: null, body: '{"token":', headers: { 'content-type': 'application/json' } });
    assert.equal(malformed.status, 400);
    assert.equal(malformed.body.error.code, 'malformed_json');
    const devices = await cp.api('GET', '/api/v1/devices');
    assert.equal(devices.body.devices.length, 3, 'no device row was half-created');
  });

  test('manual-approve tokens keep devices pending (refused by the broker) until approved', async () => {
    const t = await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'munich', hw: 'jetson' }, autoApprove: false } });
    const r = await enroll(t.body.token);
    assert.equal(r.body.status, 'pending');
    await assert.rejects(connectDevice(cp.mqttUrl, r.body.deviceId, r.body.mqtt.password), /Not authorized/i);
    const approved = await cp.api('POST', `/api/v1/devices/${r.body.deviceId}/approve`, { json: {} });
    assert.equal(approved.body.status, 'approved');
    const c = await connectDevice(cp.mqttUrl, r.body.deviceId, r.body.mqtt.password);
    clients.push(c);
    enrolled.push(r.body);
    c.end();
  });

  test('an expired enrollment token is refused', async () => {
    const t = await cp.api('POST', '/api/v1/enroll-tokens', { json: { ttlSeconds: 1 } });
    await new Promise((r) => setTimeout(r, 1100));
    const r = await enroll(t.body.token);
    assert.equal(r.status, 401);
    assert.match(r.body.error.message, /expired/);
  });

  test('labels, selectors and cohorts', async () => {
    const [a, b] = enrolled;
    await cp.api('PATCH', `/api/v1/devices/${b.deviceId}/labels`, { json: { set: { quarantine: 'true' } } });
    const sel = encodeURIComponent('site=berlin,!quarantine');
    const list = await cp.api('GET', `/api/v1/devices?selector=${sel}`);
    assert.equal(list.body.devices.length, 2);
    assert.ok(!list.body.devices.some((d: { id: string }) => d.id === b.deviceId));
    const c = await cp.api('POST', '/api/v1/cohorts', { json: { name: 'edge-a', selector: 'site in (berlin,munich),hw in (rpi4,jetson),!quarantine' } });
    assert.equal(c.status, 201);
    const members = await cp.api('GET', '/api/v1/cohorts/edge-a');
    assert.deepEqual(members.body.members.map((d: { id: string }) => d.id).sort(), [a.deviceId, enrolled[2].deviceId, enrolled[3].deviceId].sort());
    const bad = await cp.api('POST', '/api/v1/cohorts', { json: { name: 'bad', selector: 'hw in (rpi4' } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /position/);
    assert.equal((await cp.api('GET', '/api/v1/devices?selector=' + encodeURIComponent('a b'))).status, 400);
    assert.equal((await cp.api('POST', '/api/v1/cohorts', { json: { name: 'edge-a', selector: 'x' } })).status, 409);
    assert.equal((await cp.api('GET', '/api/v1/devices/dev_doesnotexist')).status, 404);
    assert.equal((await cp.api('POST', '/api/v1/devices/dev_doesnotexist/approve')).status, 404);
  });

  test('broker: wrong password and spoofed client ids are refused', async () => {
    const [a, b] = enrolled;
    await assert.rejects(connectDevice(cp.mqttUrl, a.deviceId, 'wrong-password'), /Bad username or password/i);
    await assert.rejects(connectDevice(cp.mqttUrl, a.deviceId, b.mqtt.password), /Bad username or password/i);
    await assert.rejects(connectDevice(cp.mqttUrl, b.deviceId, a.mqtt.password, { username: a.deviceId }), /Not authorized/i);
    const metrics = await fetch(`${cp.url}/metrics`).then((r) => r.text());
    assert.match(metrics, /flotilla_mqtt_refused_total\{kind="auth"\} [3-9]/);
  });

  test('broker ACL: subscribe to #, to another device, publish as another device: all refused', async () => {
    const [a, b] = enrolled;
    const ca = await connectDevice(cp.mqttUrl, a.deviceId, a.mqtt.password);
    const cb = await connectDevice(cp.mqttUrl, b.deviceId, b.mqtt.password);
    clients.push(ca, cb);
    // MQTT.js rejects a SUBACK carrying 0x80, so each filter is tried on its own.
    for (const filter of ['#', deviceTopic(b.deviceId, 'desired'), 'flotilla/v1/devices/+/desired', `${deviceTopic(a.deviceId, 'cmd')}/#`]) {
      await assert.rejects(ca.subscribeAsync(filter), /Subscribe error/, filter);
    }
    for (const filter of [deviceTopic(a.deviceId, 'desired'), deviceTopic(a.deviceId, 'cmd')]) {
      const [granted] = await ca.subscribeAsync(filter, { qos: 1 });
      assert.equal(granted.qos, 1, filter);
    }
    assert.ok(ca.connected, 'a refused subscription keeps the client connected');

    // Device B listens on its own cmd topic; A tries to publish into B's topics and is cut off.
    const received: string[] = [];
    await cb.subscribeAsync(deviceTopic(b.deviceId, 'cmd'));
    cb.on('message', (topic) => received.push(topic));
    const closed = new Promise<void>((r) => ca.once('close', () => r()));
    ca.publish(deviceTopic(b.deviceId, 'cmd'), JSON.stringify({ v: 1, id: 'x', command: 'ping' }), { qos: 1 });
    await closed;
    // And the message never reached B.
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(received, []);
    const metrics = await fetch(`${cp.url}/metrics`).then((r) => r.text());
    assert.match(metrics, /flotilla_mqtt_refused_total\{kind="publish"\} 1/);
    assert.match(metrics, /flotilla_mqtt_refused_total\{kind="subscribe"\} 4/);
  });

  test('presence: connect marks a device online, a dropped connection offline', async () => {
    const [a] = enrolled;
    const c = await connectDevice(cp.mqttUrl, a.deviceId, a.mqtt.password, {
      will: { topic: deviceTopic(a.deviceId, 'status'), payload: Buffer.from(JSON.stringify({ v: 1, state: 'offline' })), qos: 1, retain: true },
    });
    clients.push(c);
    await waitFor('online', async () => (await cp.api('GET', `/api/v1/devices/${a.deviceId}`)).body.online === true);
    const seen = (await cp.api('GET', `/api/v1/devices/${a.deviceId}`)).body.lastSeen;
    assert.ok(seen);
    c.stream.destroy(); // unclean: the broker publishes the last will
    await waitFor('offline', async () => (await cp.api('GET', `/api/v1/devices/${a.deviceId}`)).body.online === false);
  });

  test('malformed payloads on device topics are dropped and counted; the server keeps running', async () => {
    const [a] = enrolled;
    const c = await connectDevice(cp.mqttUrl, a.deviceId, a.mqtt.password);
    clients.push(c);
    await c.publishAsync(deviceTopic(a.deviceId, 'status'), 'not json{', { qos: 1 });
    await c.publishAsync(deviceTopic(a.deviceId, 'status'), JSON.stringify({ v: 1, state: 'sleeping' }), { qos: 1 });
    await c.publishAsync(deviceTopic(a.deviceId, 'status'), JSON.stringify({ v: 2, state: 'online' }), { qos: 1 });
    const metrics = await waitFor('drop counters', async () => {
      const m = await fetch(`${cp.url}/metrics`).then((r) => r.text());
      return /reason="schema_version"\} 1/.test(m) ? m : undefined;
    });
    assert.match(metrics, /flotilla_mqtt_messages_dropped_total\{channel="status",reason="malformed_json"\} 1/);
    assert.match(metrics, /flotilla_mqtt_messages_dropped_total\{channel="status",reason="invalid_schema"\} 1/);
    assert.ok(c.connected);
    assert.equal((await cp.api('GET', '/healthz', { token: null })).status, 200);
    c.end();
  });

  test('revoking a device disconnects it at once and its credentials stop working', async () => {
    const [, , third] = enrolled;
    const c = await connectDevice(cp.mqttUrl, third.deviceId, third.mqtt.password);
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    const res = await cp.api('POST', `/api/v1/devices/${third.deviceId}/revoke`);
    assert.equal(res.body.status, 'revoked');
    await closed;
    await assert.rejects(connectDevice(cp.mqttUrl, third.deviceId, third.mqtt.password), /Not authorized/i);
    const audit = await cp.api('GET', '/api/v1/audit?action=device.revoke');
    assert.equal(audit.body.entries[0].target, third.deviceId);
  });
});
