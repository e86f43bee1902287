// Two control-plane replicas (compiled, child processes) writing one SQLite file at once: concurrent
// enrollments through both, each a write transaction that stays open while the broker (Mosquitto
// with dynamic security) learns the device's credentials. libsql's client opens a new pool
// connection whenever a transaction holds one, and a busy timeout set with a PRAGMA reached only the
// first: the others answered SQLITE_BUSY at once, and the enrollment a 500. Every enrollment must
// succeed, each device once in the database and once on the broker.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createClient } from '@libsql/client';
import mqtt from 'mqtt';
import { mosquittoSkip, startMosquitto, type TestMosquitto } from './helpers/mosquitto.ts';
import { startReplica, type Replica } from './helpers/replica.ts';

const FACTS = { arch: 'arm64', cpus: 4, memoryBytes: 4 * 1024 ** 3, os: 'linux 6.1', agentVersion: '0.1.0' };
const PER_REPLICA = 8;

describe('two replicas writing one SQLite file', { skip: mosquittoSkip() }, () => {
  let mosq: TestMosquitto;
  let dataDir: string;
  const replicas: Replica[] = [];

  before(async () => {
    mosq = await startMosquitto();
    dataDir = await mkdtemp(path.join(tmpdir(), 'flotilla-replica-writes-'));
  });
  after(async () => {
    for (const r of replicas) r.child.kill('SIGKILL');
    await Promise.all(replicas.map((r) => r.exited));
    await mosq?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('concurrent enrollments through both replicas all succeed', async () => {
    const common = {
      FLOTILLA_DATA_DIR: dataDir,
      FLOTILLA_MQTT_URL: mosq.url,
      FLOTILLA_MQTT_ADMIN_USERNAME: mosq.admin.username,
      FLOTILLA_MQTT_ADMIN_PASSWORD: mosq.admin.password,
      FLOTILLA_SCHEDULER: 'off',
      FLOTILLA_DRIFT_CRON: 'off',
    };
    // A first: it migrates the database and writes the admin token.
    const a = await startReplica({ ...common, FLOTILLA_MQTT_CLIENT_ID: 'replica-a' });
    replicas.push(a);
    const b = await startReplica({ ...common, FLOTILLA_MQTT_CLIENT_ID: 'replica-b' });
    replicas.push(b);
    const admin = (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim();
    const post = async (r: Replica, p: string, json: unknown, token?: string) => {
      const res = await fetch(r.url + p, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(json) });
      return { status: res.status, body: (await res.json()) as any };
    };
    const enrollToken = (await post(a, '/api/v1/enroll-tokens', {}, admin)).body.token as string;

    // All at once: within a replica the transactions overlap (each waits for its broker round trip),
    // and across replicas they contend for the file's write lock.
    const results = await Promise.all(Array.from({ length: 2 * PER_REPLICA }, (_, i) => post(i % 2 ? b : a, '/api/v1/enroll', { token: enrollToken, facts: FACTS })));
    const failed = results.filter((r) => r.status !== 201);
    assert.deepEqual(failed, [], 'every enrollment answered 201');
    const ids = results.map((r) => r.body.deviceId as string);
    assert.equal(new Set(ids).size, ids.length);

    const db = createClient({ url: `file:${path.join(dataDir, 'flotilla.db')}` });
    try {
      const rows = await db.execute('SELECT id FROM devices');
      assert.deepEqual(rows.rows.map((r) => String(r.id)).sort(), [...ids].sort(), 'each enrolled device stored once');
    } finally {
      db.close();
    }
    // The broker learnt each device's credentials: every one connects.
    for (const [i, r] of results.entries()) {
      const c = await mqtt.connectAsync(mosq.url, { clientId: ids[i], username: ids[i], password: r.body.mqtt.password, reconnectPeriod: 0 });
      await c.endAsync();
    }
    assert.doesNotMatch(a.output() + b.output(), /SQLITE_BUSY/, 'no writer gave up on the lock');
  });
});
