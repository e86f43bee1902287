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
