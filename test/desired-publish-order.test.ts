// A device's desired state reaches the broker in counter order, whatever order the paths that publish
// it (deployments, rollout ticks, rollbacks, republishes) finish in; and a rollout tick that listed a
// rollout before an abort with rollback committed does not give the rolled-back devices its bundle again
// (the flake of rollout-superseded.test.ts: the lab devices never got back to v1).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eq } from 'drizzle-orm';
import mqtt, { type MqttClient } from 'mqtt';
import { waitFor } from '../agent/testing/harness.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { deviceDesired, rollouts } from '../server/db/schema.ts';
import { createLogger } from '../server/logger.ts';
import { tickRollout } from '../server/rollouts/rollout-ticker.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { enrollFakes, deployTo, tabVersions, trustReleaseKey } from './helpers/rollout-lab.ts';

const FACTS = { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' };

describe('desired state reaches the broker in counter order', () => {
  let cp: TestPlane;
  const clients: MqttClient[] = [];
  before(async () => {
    // No scheduler: nothing but the test publishes.
    cp = await startControlPlane({ schedulerEnabled: false, driftCron: 'off' });
  });
  after(async () => {
    for (const c of clients) c.end(true);
    await cp.stop();
  });

  test('an older manifest published after a newer one reaches neither the device nor the retained store', async () => {
    await trustReleaseKey(cp);
    const [b1, b2] = await tabVersions(cp, 2);
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: {} })).body.token as string;
    const r = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const { deviceId: id, mqtt: { password } } = r.body as { deviceId: string; mqtt: { password: string } };
    const connect = async (got: number[]) => {
      const c = await mqtt.connectAsync(cp.mqttUrl, { clientId: id, username: id, password, reconnectPeriod: 0, connectTimeout: 10_000 });
      clients.push(c);
      c.on('error', () => {});
      c.on('message', (_t, payload) => got.push((JSON.parse(payload.toString()) as { manifest: { signed: { counter: number } } }).manifest.signed.counter));
      await c.subscribeAsync(deviceTopic(id, 'desired'), { qos: 1 });
      return c;
    };
    const { db, desired } = cp.plane;
    // Two assignments committed one after the other, published the other way round (as when the first
    // one's publish is still on its way when the second one's goes out).
    const assign = (bundle: string) => db.transaction((tx) => desired.assign(tx, bundle, [id], {}));

    const live: number[] = [];
    const a = await connect(live);
    const older = await assign(b1);
    const newer = await assign(b2);
    assert.deepEqual([older[0].counter, newer[0].counter], [1, 2]);
    await desired.publishBuilt(newer);
    await desired.publishBuilt(older);
    // The stored state once more (same counter, passes): when it arrived, anything published before it did.
    await desired.publish([id]);
    await waitFor(() => live.filter((c) => c === 2).length === 2, 'the newer manifest and the republish', 30_000, 20);
    assert.deepEqual(live, [2, 2], 'the older manifest never reached the device');
    await a.endAsync(true);

    // Nobody subscribed: what a device connecting later finds retained is the newer one.
    const older2 = await assign(b1);
    const newer2 = await assign(b2);
    assert.deepEqual([older2[0].counter, newer2[0].counter], [3, 4]);
    await desired.publishBuilt(newer2);
    await desired.publishBuilt(older2);
    const retained: number[] = [];
    await connect(retained);
    await waitFor(() => retained.length >= 1, 'the retained desired state', 30_000, 20);
    assert.equal(retained[0], 4);
    const [row] = await db.select({ counter: deviceDesired.counter }).from(deviceDesired).where(eq(deviceDesired.deviceId, id));
    assert.equal(row.counter, 4, 'the retained state is the stored one');
  });
});

describe('a rollout tick that listed the rollout before it was aborted', () => {
  let cp: TestPlane;
  before(async () => {
    // The test runs the tick itself.
    cp = await startControlPlane({ schedulerEnabled: false, driftCron: 'off' });
  });
  after(async () => {
    await cp.stop();
  });

  test('does not give the rolled-back devices the aborted rollout\'s bundle again', async () => {
    await trustReleaseKey(cp);
    const [v1, v2] = await tabVersions(cp, 2);
    assert.equal((await cp.api('POST', '/api/v1/cohorts', { json: { name: 'fleet', selector: 'site=lab' } })).status, 201);
    const lab = await enrollFakes(cp, { site: 'lab' }, 2);
    try {
      await deployTo(cp, v1, 'fleet', lab);
      const rollout = (await cp.api('POST', '/api/v1/rollouts', { json: { bundle: v2, cohort: 'fleet', stages: [1], bakeS: 3600, gates: { maxLatencyRatio: null } } })).body;
      await waitFor(() => lab.every((d) => d.active === v2), 'the lab devices on v2', 30_000, 50);
      const { db, desired } = cp.plane;
      // What a tick lists before its transaction; the abort with rollback commits in between.
      const [seen] = await db.select().from(rollouts).where(eq(rollouts.id, rollout.id));
      assert.equal((await cp.api('POST', `/api/v1/rollouts/${rollout.id}/abort`, { json: { rollback: true } })).status, 200);
      await waitFor(() => lab.every((d) => d.active === v1), 'the lab devices back on v1', 30_000, 50);
      const before = await db.select({ id: deviceDesired.deviceId, bundle: deviceDesired.bundleId, counter: deviceDesired.counter }).from(deviceDesired);

      assert.equal(await tickRollout(db, desired, createLogger('silent'), seen), false);
      const rows = await db.select({ id: deviceDesired.deviceId, bundle: deviceDesired.bundleId, counter: deviceDesired.counter }).from(deviceDesired);
      assert.deepEqual(rows, before, 'the tick assigned nothing');
      assert.ok(rows.every((r) => r.bundle === v1));
    } finally {
      await Promise.all(lab.map((d) => d.close()));
    }
  });
});

describe('the publish-order gate forgets revoked devices', () => {
  let cp: TestPlane;
  before(async () => {
    cp = await startControlPlane({ schedulerEnabled: false, driftCron: 'off' });
  });
  after(async () => {
    await cp.stop();
  });

  test('a revoked device leaves the gate and is not re-signed or republished, so nothing adds it back', async () => {
    await trustReleaseKey(cp);
    const [v1] = await tabVersions(cp, 1);
    assert.equal((await cp.api('POST', '/api/v1/cohorts', { json: { name: 'fleet', selector: 'site=lab' } })).status, 201);
    const lab = await enrollFakes(cp, { site: 'lab' }, 3);
    try {
      await deployTo(cp, v1, 'fleet', lab);
      const { db, desired } = cp.plane;
      assert.equal(desired.rememberedForOrder(), 3);
      const gone = lab[0].id;
      assert.equal((await cp.api('POST', `/api/v1/devices/${gone}/revoke`)).status, 200);
      assert.equal(desired.rememberedForOrder(), 2, 'the revoked device is forgotten');
      const counters = async () => new Map((await db.select({ id: deviceDesired.deviceId, counter: deviceDesired.counter }).from(deviceDesired)).map((r) => [r.id, r.counter]));
      const before = await counters();
      // A key-list change re-signs and republishes every device's manifest (and a full republish seeds them all).
      await desired.resignAll();
      await desired.publish();
      const after = await counters();
      assert.equal(after.get(gone), before.get(gone), 'the revoked device was not re-signed');
      for (const d of lab.slice(1)) assert.equal(after.get(d.id), before.get(d.id)! + 1, `${d.id} re-signed`);
      assert.equal(desired.rememberedForOrder(), 2, 'nothing published the revoked device again');
    } finally {
      await Promise.all(lab.map((d) => d.close()));
    }
  });
});
