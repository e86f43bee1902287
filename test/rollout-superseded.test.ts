// Overlapping rollouts on one device (issue 14): two cohorts share devices, a newer rollout to one of
// them takes the shared devices over while an older rollout on the other still bakes. The newer one
// wins: the older records those devices `superseded` (API and `flotilla rollouts show`), no longer counts
// them, never gives them its bundle again, and its rollback leaves them on the newer rollout's bundle.
// Devices are simulated over real MQTT (test/helpers/fake-device.ts).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../agent/testing/harness.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { FakeDevice } from './helpers/fake-device.ts';
import { tabVersions, enrollFakes, deployTo } from './helpers/rollout-lab.ts';
import { deviceDesired } from '../server/db/schema.ts';


describe('overlapping rollouts: the newer wins, the older records superseded', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  const lab: FakeDevice[] = [];
  const east: FakeDevice[] = [];
  const bundles: string[] = [];

  before(async () => {
    cp = await startControlPlane({ schedulerTickMs: 100, driftCron: 'off' });
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-superseded-'));
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    assert.equal((await runCli(['keys', 'init', '--root-key', path.join(dir, 'root.key')], env)).code, 0);
    bundles.push(...(await tabVersions(cp, 3)));
    // Cohort `fleet` is every device; `east` is two of them.
    assert.equal((await cp.api('POST', '/api/v1/cohorts', { json: { name: 'fleet', selector: 'site=lab' } })).status, 201);
    assert.equal((await cp.api('POST', '/api/v1/cohorts', { json: { name: 'east', selector: 'zone=east' } })).status, 201);
    lab.push(...(await enrollFakes(cp, { site: 'lab' }, 2)));
    east.push(...(await enrollFakes(cp, { site: 'lab', zone: 'east' }, 2)));
    await deployTo(cp, bundles[0], 'fleet', [...lab, ...east]);
  });
  after(async () => {
    await Promise.all([...lab, ...east].map((d) => d.close()));
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('a newer rollout to shared devices takes them over; the older shows them superseded and its rollback leaves them alone', async () => {
    const show = async (id: string) => (await cp.api('GET', `/api/v1/rollouts/${id}`)).body;
    // The older rollout: v2 on the whole fleet in one stage, baking for an hour.
    const older = (await cp.api('POST', '/api/v1/rollouts', { json: { bundle: bundles[1], cohort: 'fleet', stages: [1], bakeS: 3600, gates: { maxLatencyRatio: null } } })).body;
    await waitFor(async () => (await show(older.id)).devices.every((d: { state: string }) => d.state === 'active'), 'the older rollout active on all four', 30_000, 50);

    // The newer rollout: v3 on `east`.
    const newer = (await cp.api('POST', '/api/v1/rollouts', { json: { bundle: bundles[2], cohort: 'east', stages: [1], bakeS: 0, gates: { maxLatencyRatio: null } } })).body;
    assert.equal(newer.previousBundleId, bundles[1]);
    let last: any;
    await waitFor(async () => (last = await show(newer.id)).status === 'succeeded', 'the newer rollout succeeds', 30_000, 50).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(last)}`);
    });
    const eastIds = new Set(east.map((d) => d.id));
    await waitFor(async () => (last = await show(older.id)).devices.filter((d: { state: string }) => d.state === 'superseded').length === 2, 'the older rollout records two devices superseded', 30_000, 50).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(last.devices)}`);
    });
    for (const d of last.devices) {
      if (eastIds.has(d.id)) {
        assert.equal(d.state, 'superseded');
        assert.equal(d.reason, `taken over by the newer rollout ${newer.id}`);
        assert.equal(d.desiredBundle, bundles[2]);
      } else assert.equal(d.state, 'active', JSON.stringify(d));
    }
    // The older rollout no longer counts them: its stage is the two lab devices.
    await waitFor(async () => (await show(older.id)).lastCheck?.devices === 2, 'the older stage counts two devices', 30_000, 50);
    const table = await runCli(['rollouts', 'show', older.id], env);
    assert.equal(table.code, 0, table.stderr);
    for (const d of east) assert.match(table.stdout, new RegExp(`^${d.id}\\s+1\\s+superseded\\s+taken over by the newer rollout ${newer.id}`, 'm'));
    for (const d of lab) assert.match(table.stdout, new RegExp(`^${d.id}\\s+1\\s+active\\b`, 'm'));

    // Rolling the older rollout back returns only its own devices to v1; the superseded stay on v3.
    assert.equal((await cp.api('POST', `/api/v1/rollouts/${older.id}/abort`, { json: { rollback: true } })).status, 200);
    await waitFor(async () => lab.every((d) => d.active === bundles[0]), 'the lab devices back on v1', 30_000, 50).catch(async (err: Error) => {
      // What each device was sent (and whether it is connected) against what is stored: a failure says which side lost it.
      const rows = await cp.plane.db.select({ id: deviceDesired.deviceId, counter: deviceDesired.counter, bundle: deviceDesired.bundleId, deployment: deviceDesired.deploymentId }).from(deviceDesired);
      const sent = lab.map((d) => ({ id: d.id, connected: d.client.connected, received: d.received }));
      throw new Error(`${err.message} (v1..v3 ${bundles.join(', ')}): devices ${JSON.stringify(sent)}; stored ${JSON.stringify(rows)}`);
    });
    for (const d of east) {
      assert.equal(d.active, bundles[2], 'still on the newer rollout\'s bundle');
      assert.equal(d.countersFor(bundles[1]).length, 1, 'given the older bundle once, never again');
    }
    const after = await show(older.id);
    assert.deepEqual(after.devices.filter((d: { id: string }) => eastIds.has(d.id)).map((d: { state: string }) => d.state), ['superseded', 'superseded']);
  });
});
