// Enrollment against a real Mosquitto 2 with dynamic security (issue 16). The broker learns a device's
// credentials before the enrollment's database transaction, never inside it (enroll-service.ts):
// - dynamic-security requests made together go out in one message, each getting its own answers;
// - an enrollment whose transaction fails after the broker learned the client withdraws that client;
// - a client provisioned for an enrollment that never committed (the server died in between) is deleted
//   by the reconcile, but not while that enrollment is still in flight;
// - the broker away at enrollment: 503 and nothing written; the real agent retries and enrolls once it is back;
// - a broker restarted without persistence lost the device's client and its retained `desired`: the
//   device's broker-access restore brings back both (the stored bytes, published again).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eq } from 'drizzle-orm';
import mqtt from 'mqtt';
import { AgentProcess, api, freePort, waitFor } from '../agent/testing/harness.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { DynsecAdmin } from '../server/broker/dynsec-admin.ts';
import { deviceRole } from '../server/broker/mosquitto-access.ts';
import { devices, enrollTokens } from '../server/db/schema.ts';
import { storedDesiredPayloads } from '../server/deployments/stored-desired.ts';
import { enrollDevice, revokeEnrollToken } from '../server/enroll/enroll-service.ts';
import { createLogger } from '../server/logger.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { mosquittoConfig, mosquittoSkip, startMosquitto, type TestMosquitto } from './helpers/mosquitto.ts';
import { tabVersions, trustReleaseKey } from './helpers/rollout-lab.ts';

const FACTS = { arch: 'arm64', cpus: 4, memoryBytes: 4 * 1024 ** 3, os: 'linux 6.1', agentVersion: '0.1.0' };

describe('Mosquitto: enrollment provisions the broker outside the database transaction', { skip: mosquittoSkip() }, () => {
  let mosq: TestMosquitto;
  let cp: TestPlane;
  let admin: DynsecAdmin;
  let server: { username: string; password: string };
  let dir: string;

  const clientExists = async (id: string) => !(await admin.run([{ command: 'getClient', username: id }]))[0].error;
  const canLogIn = (id: string, password: string) =>
    mqtt.connectAsync(mosq.url, { clientId: id, username: id, password, reconnectPeriod: 0, connectTimeout: 5000 }).then(
      (c) => c.endAsync().then(() => true),
      () => false,
    );
  const tokenUses = async (token: string) => (await cp.api('GET', '/api/v1/enroll-tokens')).body.tokens.find((t: { id: string }) => t.id === token)?.uses;

  before(async () => {
    mosq = await startMosquitto();
    const cfg = mosquittoConfig(mosq);
    server = cfg.externalBroker;
    cp = await startControlPlane({ ...cfg, brokerReconcileS: 0, driftCron: 'off' });
    admin = new DynsecAdmin({ url: mosq.url, ...mosq.admin, logger: createLogger('silent') });
    await admin.start();
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-enroll-provisioning-'));
  });
  after(async () => {
    await admin?.stop();
    await cp?.stop();
    await mosq?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('requests queued together go out as one message; each gets its own answers', async () => {
    const before = { ...admin.pipeline };
    const ids = Array.from({ length: 12 }, (_, i) => `probe${i}`);
    const answers = await Promise.all(ids.map((id) => admin.queue([{ command: 'createRole', rolename: `pipeline-${id}` }, { command: 'getRole', rolename: `pipeline-${id}` }])));
    assert.equal(admin.pipeline.messages - before.messages, 1, 'one message for the 12 requests');
    assert.equal(admin.pipeline.requests - before.requests, 12);
    answers.forEach((a, i) => {
      assert.deepEqual(a.map((r) => r.command), ['createRole', 'getRole']);
      assert.equal(a[0].error, undefined);
      assert.equal((a[1].data!.role as { rolename: string }).rolename, `pipeline-${ids[i]}`, 'its own answer');
    });
  });

  test('concurrent enrollments over HTTP: every device can log in to Mosquitto', async () => {
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { burst: '1' } } })).body.token as string;
    const res = await Promise.all(Array.from({ length: 10 }, () => cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } })));
    for (const r of res) assert.equal(r.status, 201, JSON.stringify(r.body));
    for (const r of res) assert.ok(await canLogIn(r.body.deviceId, r.body.mqtt.password), `${r.body.deviceId} logs in`);
  });

  test('the transaction fails after the broker learned the client: the client is withdrawn, nothing is enrolled', async () => {
    const created = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { maxUses: 5 } })).body as { id: string; token: string };
    const access = cp.plane.mosquitto!;
    let provisioned = '';
    await assert.rejects(
      enrollDevice(cp.plane.db, { token: created.token, facts: FACTS }, {
        async enrolled(id, secret, approved) {
          await access.enrolled(id, secret, approved);
          provisioned = id;
          assert.ok(await clientExists(id), 'provisioned before the transaction');
          // The token is revoked between the check and the transaction: the transaction refuses it.
          await revokeEnrollToken(cp.plane.db, created.id, 'test');
        },
        enrollEnded: (id, committed) => access.enrollEnded(id, committed),
      }),
      /enrollment token revoked/,
    );
    assert.ok(provisioned);
    assert.equal(await clientExists(provisioned), false, 'client withdrawn');
    assert.match((await admin.run([{ command: 'getRole', rolename: deviceRole(provisioned) }]))[0].error ?? '', /not found/i, 'role withdrawn');
    assert.equal((await cp.plane.db.select().from(devices).where(eq(devices.id, provisioned))).length, 0);
    assert.equal((await cp.plane.db.select().from(enrollTokens).where(eq(enrollTokens.id, created.id)))[0].uses, 0);
  });

  test('a client whose enrollment never committed is deleted by the reconcile, not while that enrollment is in flight', async () => {
    const access = cp.plane.mosquitto!;
    const id = `dev_orphan${randomBytes(3).toString('hex')}`;
    await access.enrolled(id, 'fld_orphan-secret', true);
    let r = (await cp.api('POST', '/api/v1/broker/reconcile')).body;
    assert.ok(await clientExists(id), `in flight: kept (${JSON.stringify(r)})`);
    // The server "died" before its transaction: this replica forgets the enrollment, the client stays behind.
    (access as unknown as { enrolling: Set<string> }).enrolling.delete(id);
    r = (await cp.api('POST', '/api/v1/broker/reconcile')).body;
    assert.ok(r.deleted >= 1, JSON.stringify(r));
    assert.equal(await clientExists(id), false, 'the orphan client is deleted');
  });

  test('the broker away at enrollment: 503 and nothing written; the agent retries and enrolls once it is back', async () => {
    const created = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { maxUses: 1, labels: { away: '1' } } })).body as { id: string; token: string };
    const count = async () => (await cp.api('GET', '/api/v1/devices')).body.devices.length as number;
    const devicesBefore = await count();
    await mosq.halt();
    try {
      const r = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: created.token, facts: FACTS } });
      assert.equal(r.status, 503, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'broker_unavailable');
      assert.equal(await count(), devicesBefore, 'no device row');
      assert.equal(await tokenUses(created.id), 0, 'the token\'s one use is not spent');
    } finally {
      await mosq.resume();
    }
    const port = await freePort();
    const agent = new AgentProcess(
      ['--server', cp.url, '--enroll-token', created.token, '--data-dir', path.join(dir, 'agent'), '--api-port', String(port), '--reconnect-min-ms', '100', '--reconnect-max-ms', '1000', '--stats', 'off'],
      { FLOTILLA_AGENT_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG ?? 'warn' },
    );
    try {
      await mosq.halt();
      agent.start();
      // Refused with 503 while the broker is away (the agent keeps retrying), then the broker comes back.
      await waitFor(() => /enrollment: server error, retrying/.test(agent.output), 'the agent refused with 503 at least once', 30_000);
      await mosq.resume();
      await waitFor(async () => (await api(port, 'GET', '/v1/status').catch(() => ({ body: {} }))).body.mqtt?.connected === true, 'agent enrolled and connected once the broker is back', 90_000);
      assert.equal(await count(), devicesBefore + 1);
      assert.equal(await tokenUses(created.id), 1);
    } finally {
      await agent.stop();
    }
  });

  test('Mosquitto restarted with an empty store (no persistence) and without the device\'s client: the restore brings back its login and its retained desired state', async () => {
    await trustReleaseKey(cp);
    const [bundle] = await tabVersions(cp, 1);
    assert.equal((await cp.api('POST', '/api/v1/cohorts', { json: { name: 'lost', selector: 'site=lost' } })).status, 201);
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'lost' } } })).body.token as string;
    const d = (await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } })).body as { deviceId: string; mqtt: { password: string } };
    assert.equal((await cp.api('POST', '/api/v1/deployments', { json: { bundle, cohort: 'lost' } })).status, 201);
    const [stored] = await storedDesiredPayloads(cp.plane.db, [d.deviceId]);
    assert.ok(stored, 'the device has stored desired state');

    // Retained desired as seen by a subscriber: a probe published after subscribing arrives after any
    // retained message (one connection, in order), so its arrival with nothing before means none.
    const retained = async (creds: { clientId: string; username: string; password: string }) => {
      const c = await mqtt.connectAsync(mosq.url, { ...creds, reconnectPeriod: 0, connectTimeout: 10_000 });
      try {
        const got: string[] = [];
        const probe = `flotilla/v1/probe/${randomBytes(4).toString('hex')}`;
        let probed!: () => void;
        const probeSeen = new Promise<void>((r) => (probed = r));
        c.on('message', (topic, payload) => (topic === probe ? probed() : got.push(payload.toString('utf8'))));
        await c.subscribeAsync(deviceTopic(d.deviceId, 'desired'), { qos: 1 });
        if (creds.username === server.username) {
          await c.subscribeAsync(probe, { qos: 1 });
          await c.publishAsync(probe, 'x', { qos: 1 });
          await probeSeen;
        } else await waitFor(() => got.length > 0, 'retained desired delivered to the device', 30_000);
        return got;
      } finally {
        await c.endAsync();
      }
    };
    const asServer = () => retained({ clientId: `probe-${randomBytes(3).toString('hex')}`, ...server });
    await waitFor(async () => (await asServer()).includes(stored.payload), 'the deployment retained on the broker', 30_000);

    await mosq.halt();
    const file = path.join(mosq.dir, 'dynamic-security.json');
    const state = JSON.parse(await readFile(file, 'utf8'));
    state.clients = state.clients.filter((c: { username: string }) => c.username !== d.deviceId);
    state.roles = state.roles.filter((r: { rolename: string }) => r.rolename !== deviceRole(d.deviceId));
    await writeFile(file, JSON.stringify(state));
    await mosq.resume(); // `persistence false`: every retained message is gone
    await waitFor(async () => (await fetch(`${cp.url}/healthz`)).ok, 'the server back on the broker', 60_000);
    assert.deepEqual(await asServer(), [], 'the broker lost the retained desired state');
    assert.equal(await canLogIn(d.deviceId, d.mqtt.password), false, 'and the device\'s client');

    // As the agent does: a 503 until the server's dynamic-security client is back on the broker, then retried.
    const restored = await waitFor(async () => {
      const res = await fetch(`${cp.url}/api/v1/devices/${d.deviceId}/broker-access`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from(`${d.deviceId}:${d.mqtt.password}`).toString('base64')}` } });
      const body = await res.json();
      if (res.status !== 503) return { status: res.status, body };
    }, 'the restore answered', 60_000, 250);
    assert.equal(restored.status, 200, JSON.stringify(restored.body));
    assert.equal(restored.body.createdClient, true);
    const got = await retained({ clientId: d.deviceId, username: d.deviceId, password: d.mqtt.password });
    assert.deepEqual(got, [stored.payload], 'the device finds its stored desired state retained again, byte for byte');
  });
});
