// The EMQX HTTP authentication and authorization hooks, with plain HTTP requests shaped like the ones
// EMQX 5 sends (deploy/README.md gives the EMQX side): devices pass with their own credentials and
// client id only, are confined to their own topics, and stop passing when revoked or while pending.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadServerConfig } from '../server/env.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';

const FACTS = { arch: 'arm64', cpus: 4, memoryBytes: 4 * 1024 ** 3, os: 'linux 6.1', agentVersion: '0.1.0' };
const TOKEN = 'hook-token-0123456789abcdef';
const SERVER = { username: 'flotilla-server', password: 'server-password-for-emqx' };

describe('EMQX HTTP auth/authz hooks', () => {
  let cp: TestPlane;
  let a: { deviceId: string; mqtt: { password: string } };
  let b: { deviceId: string; mqtt: { password: string } };
  const hook = async (path: 'auth' | 'authz', body: unknown, token: string | null = TOKEN) => {
    const res = await fetch(`${cp.url}/api/v1/mqtt/${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  const auth = (clientid: string, username: string, password: string) => hook('auth', { clientid, username, password });
  const authz = (id: string, action: string, topic: string, clientid = id) => hook('authz', { clientid, username: id, action, topic });

  before(async () => {
    const env = loadServerConfig({ FLOTILLA_MQTT_HOOK_TOKEN: TOKEN, FLOTILLA_MQTT_PASSWORD: SERVER.password });
    cp = await startControlPlane({ mqttHookToken: env.mqttHookToken, externalBroker: env.externalBroker });
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: {} })).body.token;
    a = (await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } })).body;
    b = (await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } })).body;
  });
  after(() => cp.stop());

  test('without the hook token: 401; with the hooks off: 404', async () => {
    assert.equal((await hook('auth', { clientid: 'x', username: 'x', password: 'y' }, null)).status, 401);
    assert.equal((await hook('auth', { clientid: 'x', username: 'x', password: 'y' }, 'wrong-token-wrong-token')).status, 401);
    const off = await startControlPlane();
    try {
      const res = await fetch(`${off.url}/api/v1/mqtt/auth`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: '{}' });
      assert.equal(res.status, 404);
    } finally {
      await off.stop();
    }
  });

  test('bad bodies are a 400 with the error shape, never a 500', async () => {
    for (const body of ['{"clientid":', '[]', { clientid: 'x' }, { clientid: 'x', username: 'x', action: 'read', topic: 't' }]) {
      const r = await hook(typeof body === 'object' && 'action' in body ? 'authz' : 'auth', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error.code, 'invalid_request');
    }
  });

  test('authentication: the device with its own secret and client id; nothing else', async () => {
    assert.deepEqual((await auth(a.deviceId, a.deviceId, a.mqtt.password)).body, { result: 'allow', is_superuser: false });
    assert.equal((await auth(a.deviceId, a.deviceId, b.mqtt.password)).body.result, 'deny');
    assert.equal((await auth(b.deviceId, a.deviceId, a.mqtt.password)).body.result, 'deny', 'spoofed client id');
    assert.equal((await auth('dev_unknown0000', 'dev_unknown0000', 'x')).body.result, 'deny');
    assert.deepEqual((await auth('any-id', SERVER.username, SERVER.password)).body, { result: 'allow', is_superuser: true });
    assert.equal((await auth('any-id', SERVER.username, 'guess')).body.result, 'deny');
  });

  test('authorization: own topics only, the same rules as the embedded broker', async () => {
    const id = a.deviceId;
    for (const ch of ['telemetry', 'stats', 'reported', 'status', 'cmd/res'] as const) assert.equal((await authz(id, 'publish', deviceTopic(id, ch))).body.result, 'allow', ch);
    for (const ch of ['desired', 'cmd'] as const) assert.equal((await authz(id, 'subscribe', deviceTopic(id, ch))).body.result, 'allow', ch);
    const refused: Array<[string, string]> = [
      ['subscribe', '#'],
      ['subscribe', deviceTopic(b.deviceId, 'desired')],
      ['subscribe', 'flotilla/v1/devices/+/desired'],
      ['subscribe', `${deviceTopic(id, 'cmd')}/#`],
      ['publish', deviceTopic(id, 'desired')], // a forged (retained) desired state of its own
      ['publish', deviceTopic(b.deviceId, 'desired')],
      ['publish', deviceTopic(b.deviceId, 'telemetry')],
      ['publish', '$SYS/broker/x'],
    ];
    for (const [action, topic] of refused) assert.equal((await authz(id, action, topic)).body.result, 'deny', `${action} ${topic}`);
    assert.equal((await authz(id, 'publish', deviceTopic(id, 'telemetry'), b.deviceId)).body.result, 'deny', 'another client id');
  });

  test('a revoked device is denied at once, also on its open connection (authorization)', async () => {
    assert.equal((await cp.api('POST', `/api/v1/devices/${b.deviceId}/revoke`)).status, 200);
    assert.equal((await auth(b.deviceId, b.deviceId, b.mqtt.password)).body.result, 'deny');
    assert.equal((await authz(b.deviceId, 'publish', deviceTopic(b.deviceId, 'telemetry'))).body.result, 'deny');
  });

  test('a pending device is denied until approved', async () => {
    const t = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { autoApprove: false } })).body.token;
    const p = (await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: t, facts: FACTS } })).body;
    assert.equal((await auth(p.deviceId, p.deviceId, p.mqtt.password)).body.result, 'deny');
    await cp.api('POST', `/api/v1/devices/${p.deviceId}/approve`, { json: {} });
    assert.equal((await auth(p.deviceId, p.deviceId, p.mqtt.password)).body.result, 'allow');
  });
});
