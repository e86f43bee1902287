// Two control-plane replicas (the compiled server, as child processes) against one Mosquitto and one
// database file: device traffic is shared through the MQTT 5 shared subscription `$share/flotilla/...`,
// and a replica killed with SIGKILL while it holds received-but-uncommitted telemetry loses none of
// it: it acknowledges only after the commit, so the broker keeps those messages in its persistent
// session and sends them again when it comes back. Every report is stored exactly once, and the
// rollups count each exactly once.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createClient } from '@libsql/client';
import mqtt, { type MqttClient } from 'mqtt';
import { deviceTopic } from '../protocol/topics.ts';
import { waitFor } from '../agent/testing/harness.ts';
import { telemetryMessage } from './helpers/device-stats.ts';
import { mosquittoSkip, startMosquitto, type TestMosquitto } from './helpers/mosquitto.ts';
import { replicaMetric as metric, startReplica, type Replica } from './helpers/replica.ts';

const FACTS = { arch: 'arm64', cpus: 4, memoryBytes: 4 * 1024 ** 3, os: 'linux 6.1', agentVersion: '0.1.0' };
const DEVICES = 6;
const PER_DEVICE = 40; // half before the kill, half after

describe('replicas: shared device traffic, a replica killed -9 mid-batch', { skip: mosquittoSkip() }, () => {
  let mosq: TestMosquitto;
  let dataDir: string;
  let common: Record<string, string>;
  const replicas: Replica[] = [];
  const devices: MqttClient[] = [];

  before(async () => {
    mosq = await startMosquitto();
    dataDir = await mkdtemp(path.join(tmpdir(), 'flotilla-replicas-'));
    common = {
      FLOTILLA_DATA_DIR: dataDir,
      FLOTILLA_MQTT_URL: mosq.url,
      FLOTILLA_MQTT_ADMIN_USERNAME: mosq.admin.username,
      FLOTILLA_MQTT_ADMIN_PASSWORD: mosq.admin.password,
      FLOTILLA_SCHEDULER: 'off',
      FLOTILLA_DRIFT_CRON: 'off',
    };
  });
  after(async () => {
    for (const d of devices) d.end(true);
    for (const r of replicas) r.child.kill('SIGKILL');
    await Promise.all(replicas.map((r) => r.exited));
    await mosq?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('every report stored exactly once across two replicas and a SIGKILL', async () => {
    // A first (it migrates the database and creates the admin token), then B, which holds its batches
    // for a long time so the kill finds received, unacknowledged, uncommitted reports in it.
    const a = await startReplica({ ...common, FLOTILLA_MQTT_CLIENT_ID: 'replica-a', FLOTILLA_INGEST_FLUSH_MS: '50' });
    replicas.push(a);
    const slow = { ...common, FLOTILLA_MQTT_CLIENT_ID: 'replica-b', FLOTILLA_INGEST_FLUSH_MS: '10000', FLOTILLA_INGEST_BATCH: '5000' };
    let b = await startReplica(slow);
    replicas.push(b);
    const admin = (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim();
    const api = async (r: Replica, method: string, p: string, json?: unknown, token: string | null = admin) => {
      const res = await fetch(r.url + p, { method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: json === undefined ? undefined : JSON.stringify(json) });
      return (await res.json()) as any;
    };
    const enrollToken = (await api(a, 'POST', '/api/v1/enroll-tokens', {})).token;
    const ids: string[] = [];
    for (let i = 0; i < DEVICES; i++) {
      // Enrolled through either replica: both provision on the same broker (and write the same database file).
      const d = await api(i % 2 ? b : a, 'POST', '/api/v1/enroll', { token: enrollToken, facts: FACTS }, null);
      assert.ok(d?.mqtt?.password, `enrollment through replica ${i % 2 ? 'B' : 'A'}: ${JSON.stringify(d)}`);
      ids.push(d.deviceId);
      const c = await mqtt.connectAsync(mosq.url, { clientId: d.deviceId, username: d.deviceId, password: d.mqtt.password, clean: false, reconnectPeriod: 0 });
      c.on('error', () => {});
      devices.push(c);
    }
    const now = Date.now();
    const publish = (from: number, to: number) =>
      Promise.all(
        devices.map(async (c, i) => {
          for (let seq = from; seq < to; seq++) {
            const msg = telemetryMessage({ deviceId: ids[i], seq, at: new Date(now - (PER_DEVICE - seq) * 1000), inferences: 1 });
            await c.publishAsync(deviceTopic(ids[i], 'telemetry'), JSON.stringify(msg), { qos: 1 });
          }
        }),
      );

    await publish(0, PER_DEVICE / 2);
    // B received part of the traffic and has committed none of it (its first flush is 10 s away): kill it now.
    await waitFor(async () => (await metric(b, 'flotilla_mqtt_messages_in_total', 'channel="telemetry"')) > 0, 'B received telemetry', 20_000);
    assert.equal(await metric(b, 'flotilla_ingest_stored_total', 'channel="telemetry"'), 0, 'B still holds its batch');
    b.child.kill('SIGKILL'); // no graceful stop: B's TCP connection just drops
    // A got its share of the same traffic and stores it.
    await waitFor(async () => (await metric(a, 'flotilla_ingest_stored_total', 'channel="telemetry"')) > 0, 'A stored telemetry', 20_000);
    await b.exited;
    await publish(PER_DEVICE / 2, PER_DEVICE); // B's share of these waits in its session on the broker

    b = await startReplica({ ...slow, FLOTILLA_INGEST_FLUSH_MS: '50', FLOTILLA_INGEST_BATCH: '500' });
    replicas.push(b);

    const db = createClient({ url: `file:${path.join(dataDir, 'flotilla.db')}` });
    try {
      const total = DEVICES * PER_DEVICE;
      const rows = await waitFor(async () => {
        const r = await db.execute('SELECT count(*) AS n FROM telemetry');
        return Number(r.rows[0].n) === total ? r : undefined;
      }, `${total} telemetry rows`, 60_000);
      assert.ok(rows);
      const distinct = await db.execute('SELECT count(DISTINCT device_id || \':\' || seq) AS n FROM telemetry');
      assert.equal(Number(distinct.rows[0].n), total, 'each (device, seq) once');
      // Rollups: every report counted once (a redelivered one is a duplicate, not a second count).
      const fleet = await waitFor(async () => {
        const r = await db.execute("SELECT sum(reports) AS reports, sum(inferences) AS inferences FROM telemetry_rollups WHERE scope = 'fleet'");
        return Number(r.rows[0].reports) === total ? r : undefined;
      }, 'fleet rollups', 20_000);
      assert.equal(Number(fleet.rows[0].inferences), total);
    } finally {
      db.close();
    }
  });
});
