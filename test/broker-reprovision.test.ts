// Re-provisioning on a real Mosquitto 2 (issue 16): a device whose dynamic-security client was lost
// gets it back without enrolling again, and a revoked device's leftover client is removed.
// - The control plane reconciles on demand (`flotilla broker reconcile`, POST /api/v1/broker/reconcile):
//   lost roles recreated, revoked devices' clients deleted, devices with no client counted (/metrics).
// - A lost client cannot be recreated from the database (it keeps only a hash of the device's secret;
//   Mosquitto 2.0 takes plaintext passwords only): the real agent, refused by the broker, proves its
//   secret over HTTP and the server puts the client back. Then the agent reconnects.
// The broker is changed behind the server's back through `$CONTROL/dynamic-security/v1`, as an
// operator's mistake or a reset of the dynamic-security file would.
import assert from 'node:assert/strict';
import { readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { AgentProcess, api, freePort, waitFor } from '../agent/testing/harness.ts';
import { DynsecAdmin } from '../server/broker/dynsec-admin.ts';
import { DEVICE_CLIENT_TEXTNAME, deviceAcls, deviceRole } from '../server/broker/mosquitto-access.ts';
import { createLogger } from '../server/logger.ts';
import { cliJson } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { mosquittoConfig, mosquittoSkip, startMosquitto, type TestMosquitto } from './helpers/mosquitto.ts';

const FACTS = { arch: 'arm64', cpus: 4, memoryBytes: 4 * 1024 ** 3, os: 'linux 6.1', agentVersion: '0.1.0' };

async function metric(cp: TestPlane, line: RegExp): Promise<number> {
  const text = (await (await fetch(`${cp.url}/metrics`)).text()).split('\n').find((l) => line.test(l));
  return text ? Number(text.split(' ').at(-1)) : 0;
}

function canLogIn(url: string, id: string, password: string): Promise<boolean> {
  return mqtt.connectAsync(url, { clientId: id, username: id, password, reconnectPeriod: 0, connectTimeout: 5000 }).then(
    (c) => c.endAsync().then(() => true),
    () => false,
  );
}

describe('Mosquitto: lost device clients come back without re-enrollment', { skip: mosquittoSkip() }, () => {
  let mosq: TestMosquitto;
  let cp: TestPlane;
  let admin: DynsecAdmin;
  let dir: string;
  let env: Record<string, string>;
  let agent: AgentProcess;
  let port: number;
  let deviceId: string;

  const agentConnected = async () => (await api(port, 'GET', '/v1/status')).body.mqtt?.connected === true;
  const reconcile = () => cliJson(env, 'broker', 'reconcile');

  before(async () => {
    mosq = await startMosquitto();
    cp = await startControlPlane({ ...mosquittoConfig(mosq), brokerReconcileS: 0, driftCron: 'off' });
    admin = new DynsecAdmin({ url: mosq.url, ...mosq.admin, logger: createLogger('silent') });
    await admin.start();
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-reprovision-'));
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'r' }, maxUses: 1 } })).body.token;
    port = await freePort();
    agent = new AgentProcess(
      ['--server', cp.url, '--enroll-token', token, '--data-dir', path.join(dir, 'agent'), '--api-port', String(port), '--reconnect-min-ms', '100', '--reconnect-max-ms', '1000', '--stats', 'off'],
      { FLOTILLA_AGENT_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG ?? 'warn' },
    ).start();
    deviceId = await waitFor(async () => (await api(port, 'GET', '/v1/status')).body.deviceId, 'agent enrolled', 30_000);
    await waitFor(agentConnected, 'agent connected to Mosquitto', 30_000);
  });
  after(async () => {
    await agent?.stop();
    await admin?.stop();
    await cp?.stop();
    await mosq?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('client and role deleted on the broker: reconcile counts it missing; the agent, refused, gets it back and reconnects', async () => {
    await agent.stop();
    await admin.runOk([{ command: 'deleteClient', username: deviceId }, { command: 'deleteRole', rolename: deviceRole(deviceId) }]);
    const r = await reconcile();
    assert.equal(r.missing, 1, JSON.stringify(r));
    assert.deepEqual(r.missingDevices, [deviceId]);
    assert.equal(await metric(cp, /^flotilla_broker_clients_missing /), 1);

    // The same data dir: the agent starts with its stored identity and enrolls nothing (its token had one use).
    agent.start();
    await waitFor(agentConnected, 'agent reconnected after restoring its client', 60_000);
    // The agent counts the restore once the server's answer is read, which may be after the reconnect.
    const status = await waitFor(async () => {
      const body = (await api(port, 'GET', '/v1/status')).body;
      return body.mqtt.loginsRestored >= 1 ? body : undefined;
    }, 'the agent counted its restore', 30_000);
    assert.equal(status.deviceId, deviceId);
    assert.equal(status.mqtt.loginsRestored, 1);
    assert.equal((await cp.api('GET', '/api/v1/devices')).body.devices.length, 1, 'no second enrollment');
    const [client] = await admin.runOk([{ command: 'getClient', username: deviceId }]);
    assert.deepEqual((client.data!.client as { roles: Array<{ rolename: string }> }).roles.map((x) => x.rolename), [deviceRole(deviceId)]);
    assert.equal(await metric(cp, /^flotilla_broker_access_restored_total\{missing="client"\} /), 1);
    assert.equal((await reconcile()).missing, 0);
    assert.equal(await metric(cp, /^flotilla_broker_clients_missing /), 0);
  });

  test('a lost role is recreated by the reconcile and given back to its client', async () => {
    // Taken from the client first: Mosquitto 2.0.11 keeps a dangling pointer to a role deleted while a
    // client holds it, and its next verbose listClients crashes the broker.
    await admin.runOk([{ command: 'removeClientRole', username: deviceId, rolename: deviceRole(deviceId) }, { command: 'deleteRole', rolename: deviceRole(deviceId) }]);
    const r = await reconcile();
    assert.equal(r.rolesRecreated, 1, JSON.stringify(r));
    const [client, role] = await admin.runOk([{ command: 'getClient', username: deviceId }, { command: 'getRole', rolename: deviceRole(deviceId) }]);
    assert.deepEqual((client.data!.client as { roles: Array<{ rolename: string }> }).roles.map((x) => x.rolename), [deviceRole(deviceId)]);
    assert.equal((role.data!.role as { acls: unknown[] }).acls.length, deviceAcls(deviceId).length);
    assert.equal(await metric(cp, /^flotilla_broker_reconcile_actions_total\{action="role_recreated"\} /), 1);
  });

  test('a revoked device: its leftover client is removed, and it cannot restore one itself', async () => {
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: {} })).body.token;
    const d = (await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } })).body as { deviceId: string; mqtt: { password: string } };
    assert.equal((await cp.api('POST', `/api/v1/devices/${d.deviceId}/revoke`)).status, 200);
    // Left behind (e.g. the broker's file restored from a backup): the revoked device could log in again.
    await admin.runOk([
      { command: 'createRole', rolename: deviceRole(d.deviceId), acls: deviceAcls(d.deviceId) },
      { command: 'createClient', username: d.deviceId, clientid: d.deviceId, password: d.mqtt.password, textname: DEVICE_CLIENT_TEXTNAME, roles: [{ rolename: deviceRole(d.deviceId) }] },
    ]);
    assert.ok(await canLogIn(mosq.url, d.deviceId, d.mqtt.password), 'the leftover client works before the reconcile');
    const r = await reconcile();
    assert.equal(r.deleted, 1, JSON.stringify(r));
    assert.equal(await canLogIn(mosq.url, d.deviceId, d.mqtt.password), false);
    const [client, role] = await admin.run([{ command: 'getClient', username: d.deviceId }, { command: 'getRole', rolename: deviceRole(d.deviceId) }]);
    assert.match(client.error ?? '', /not found/i);
    assert.match(role.error ?? '', /not found/i);
    // The restore path is closed to it.
    const basic = `Basic ${Buffer.from(`${d.deviceId}:${d.mqtt.password}`).toString('base64')}`;
    const res = await fetch(`${cp.url}/api/v1/devices/${d.deviceId}/broker-access`, { method: 'POST', headers: { authorization: basic } });
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error.code, 'unauthorized');
    assert.equal(await canLogIn(mosq.url, d.deviceId, d.mqtt.password), false);
  });

  test('restoring another device\'s access, or with a wrong secret: refused', async () => {
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: {} })).body.token;
    const d = (await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } })).body as { deviceId: string; mqtt: { password: string } };
    const post = (id: string, user: string, secret: string) =>
      fetch(`${cp.url}/api/v1/devices/${id}/broker-access`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}` } });
    assert.equal((await post(deviceId, d.deviceId, d.mqtt.password)).status, 403);
    assert.equal((await post(d.deviceId, d.deviceId, 'not-the-secret')).status, 401);
    assert.equal((await fetch(`${cp.url}/api/v1/devices/${d.deviceId}/broker-access`, { method: 'POST' })).status, 401);
    const ok = await post(d.deviceId, d.deviceId, d.mqtt.password);
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { broker: 'mosquitto', createdClient: false, createdRole: false });
  });

  test('the broker\'s dynamic-security file reset: refused, the server reconciles and gets its own client back; the agent its own', async () => {
    await mosq.halt();
    const file = path.join(mosq.dir, 'dynamic-security.json');
    const state = JSON.parse(await readFile(file, 'utf8'));
    // Only the admin survives, as in a freshly initialised file.
    state.clients = state.clients.filter((c: { username: string }) => c.username === mosq.admin.username);
    state.roles = state.roles.filter((r: { rolename: string }) => r.rolename === 'admin');
    state.groups = [];
    await writeFile(file, JSON.stringify(state));
    const runs = await metric(cp, /^flotilla_broker_reconcile_runs_total\{result="ok"\} /);
    await mosq.resume();
    // No reconcile asked for: the server's refused login triggers one, which recreates its client.
    await waitFor(async () => (await fetch(`${cp.url}/healthz`)).ok, 'the server back on the broker', 60_000);
    assert.ok((await metric(cp, /^flotilla_broker_reconcile_runs_total\{result="ok"\} /)) > runs);
    await waitFor(agentConnected, 'agent reconnected after the reset', 60_000);
    const status = await waitFor(async () => {
      const body = (await api(port, 'GET', '/v1/status')).body;
      return body.mqtt.loginsRestored >= 2 ? body : undefined;
    }, 'the agent restored its client a second time', 30_000);
    assert.equal(status.deviceId, deviceId);
    const r = await reconcile();
    assert.equal(r.missing, 1, 'only the other device enrolled above, whose agent is not running');
  });

  test('the embedded broker: nothing to reconcile (409), restore is a no-op', async () => {
    const plain = await startControlPlane({ driftCron: 'off' });
    try {
      const r = await plain.api('POST', '/api/v1/broker/reconcile');
      assert.equal(r.status, 409);
      assert.match(r.body.error.message, /nothing to reconcile/);
      const token = (await plain.api('POST', '/api/v1/enroll-tokens', { json: {} })).body.token;
      const d = (await plain.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } })).body as { deviceId: string; mqtt: { password: string } };
      const res = await fetch(`${plain.url}/api/v1/devices/${d.deviceId}/broker-access`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from(`${d.deviceId}:${d.mqtt.password}`).toString('base64')}` } });
      assert.deepEqual(await res.json(), { broker: 'none', createdClient: false, createdRole: false });
      const viewer = (await plain.api('POST', '/api/v1/tokens', { json: { name: 'v', role: 'operator' } })).body.token;
      assert.equal((await plain.api('POST', '/api/v1/broker/reconcile', { token: viewer })).status, 403);
    } finally {
      await plain.stop();
    }
  });
});
