// A control plane that stops loses nothing it acknowledged: a device keeps publishing telemetry
// (QoS 1) while the plane shuts down, and every message whose PUBACK the device got is in the
// database afterwards. (Stopping the server's subscriber before the broker used to acknowledge and
// then drop whatever arrived in between; the agent deletes acknowledged messages from its outbox.)
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createClient } from '@libsql/client';
import mqtt from 'mqtt';
import { deviceTopic } from '../protocol/topics.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { telemetryMessage } from './helpers/device-stats.ts';
import { waitFor } from '../agent/testing/harness.ts';

const FACTS = { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' };

describe('graceful stop', () => {
  let cp: TestPlane;
  before(async () => {
    cp = await startControlPlane({ driftCron: 'off', ingestFlushMs: 20 });
  });
  let stopped = false;
  after(async () => {
    if (stopped) await rm(cp.dataDir, { recursive: true, force: true });
    else await cp?.stop();
  });

  test('every telemetry message acknowledged while the plane stops is stored', async () => {
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'lab' } } })).body.token;
    const r = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } });
    assert.equal(r.status, 201);
    const deviceId = r.body.deviceId as string;
    const client = await mqtt.connectAsync(cp.mqttUrl, { clientId: deviceId, username: deviceId, password: r.body.mqtt.password, reconnectPeriod: 0 });
    client.on('error', () => {});
    // MQTT.js leaves a publish in flight pending forever when the connection closes.
    const closed = new Promise<'closed'>((resolve) => client.once('close', () => resolve('closed')));

    // Publishes one message at a time (so each ack is known) until the connection goes.
    const acked: number[] = [];
    let seq = 0;
    let stopping: Promise<void> | undefined;
    const publishing = (async () => {
      for (;;) {
        const n = ++seq;
        const msg = telemetryMessage({ deviceId, seq: n, at: new Date(), inferences: 1 });
        const outcome = await Promise.race([client.publishAsync(deviceTopic(deviceId, 'telemetry'), JSON.stringify(msg), { qos: 1 }).then(() => 'acked' as const, () => 'closed' as const), closed]);
        if (outcome === 'closed') return;
        acked.push(n);
        if (n === 50) stopping = cp.plane.stop();
        if (n > 100_000) throw new Error('the connection never closed');
      }
    })();
    await publishing;
    await stopping;
    stopped = true;
    client.end(true);
    assert.ok(acked.length >= 50, `${acked.length} acknowledged`);

    const db = createClient({ url: 'file:' + path.join(cp.dataDir, 'flotilla.db') });
    try {
      const rows = await db.execute({ sql: 'select seq from telemetry where device_id = ?', args: [deviceId] });
      const stored = new Set(rows.rows.map((row) => Number(row.seq)));
      const lost = acked.filter((n) => !stored.has(n));
      assert.deepEqual(lost, [], `${lost.length} of ${acked.length} acknowledged messages lost (${acked.length - 50} acknowledged after stop began)`);
    } finally {
      db.close();
    }
  });
});

describe('graceful stop: devices', () => {
  test("closes devices without their last wills (the broker goes away, not the devices) and records them offline", async () => {
    const cp = await startControlPlane({ driftCron: 'off' });
    let stopped = false;
    try {
      const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'lab' }, autoApprove: true } })).body.token;
      const r = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } });
      assert.equal(r.status, 201);
      const deviceId = r.body.deviceId as string;
      // The agent's will: a retained `status` offline message on its own topic.
      const will = { topic: deviceTopic(deviceId, 'status'), payload: Buffer.from(JSON.stringify({ v: 1, state: 'offline', at: new Date().toISOString() })), qos: 1 as const, retain: true };
      const client = await mqtt.connectAsync(cp.mqttUrl, { clientId: deviceId, username: deviceId, password: r.body.mqtt.password, reconnectPeriod: 0, will });
      client.on('error', () => {});
      const statusIn = async () => (await cp.plane.metrics.mqttMessagesIn.get()).values.find((v) => v.labels.channel === 'status')?.value ?? 0;
      await waitFor(async () => (await cp.api('GET', `/api/v1/devices/${deviceId}`)).body.online === true, 'device online', 30_000);
      const before = await statusIn();
      await cp.plane.stop();
      stopped = true;
      client.end(true);
      assert.equal(await statusIn(), before, 'a last will reached the server during the stop');
      const db = createClient({ url: 'file:' + path.join(cp.dataDir, 'flotilla.db') });
      try {
        const row = (await db.execute({ sql: 'select online from devices where id = ?', args: [deviceId] })).rows[0];
        assert.equal(Number(row.online), 0, 'the device is recorded offline after the stop');
      } finally {
        db.close();
      }
    } finally {
      if (stopped) await rm(cp.dataDir, { recursive: true, force: true });
      else await cp.stop();
    }
  });
});
