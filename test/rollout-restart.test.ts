// A control-plane restart in the middle of a staged rollout (issue 14): the plane is stopped while a
// stage bakes and a new one starts on the same data dir and ports. The rollout goes on from where the
// database says it was: every device of the cohort gets the bundle, none is notified twice (one signed
// manifest counter per device for the bundle; what the new plane republishes at start is the same
// retained manifest), no stage is entered twice, and the rollout ends with one cohort deployment.
// Devices are simulated over real MQTT (test/helpers/fake-device.ts) and reconnect by themselves.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../agent/testing/harness.ts';
import { ControlPlane } from '../server/control-plane.ts';
import { createLogger } from '../server/logger.ts';
import type { TestPlane } from './helpers/control-plane.ts';
import type { FakeDevice } from './helpers/fake-device.ts';
import { startRolloutLab, type RolloutLab } from './helpers/rollout-lab.ts';

describe('a control-plane restart mid-stage', () => {
  let lab: RolloutLab;
  let cp: TestPlane;
  let devices: FakeDevice[];
  let bundles: string[];

  before(async () => {
    lab = await startRolloutLab({ versions: 2, devices: 6, cohort: 'fleet' });
    ({ cp, devices, bundles } = lab);
  });
  after(async () => {
    await lab?.stop(); // stops the plane the test restarted
  });

  test('the rollout continues on the new plane: every device notified exactly once, the rollout finishes', async () => {
    const started = await cp.api('POST', '/api/v1/rollouts', { json: { bundle: bundles[1], cohort: 'fleet', stages: [0.2, 0.5, 1], bakeS: 2, gates: { maxLatencyRatio: null } } });
    assert.equal(started.status, 201, JSON.stringify(started.body));
    const id: string = started.body.id;
    const rollout = async () => (await cp.api('GET', `/api/v1/rollouts/${id}`)).body;
    // Stop while the second stage bakes: its devices were notified, the last stage's were not.
    await waitFor(async () => (await rollout()).stage === 1, 'the second stage', 30_000, 50);
    const { httpPort, mqttPort } = cp.plane;
    const config = cp.plane.config;
    await cp.plane.stop();
    const midStage = devices.filter((d) => d.countersFor(bundles[1]).length > 0).length;
    assert.ok(midStage >= 1 && midStage < devices.length, `${midStage} devices had the bundle when the plane stopped`);
    const restarted = new ControlPlane({ ...config, httpPort, mqttPort }, createLogger(process.env.FLOTILLA_TEST_LOG ?? 'silent'));
    await restarted.start();
    cp.plane = restarted;

    let last: any;
    await waitFor(async () => ['succeeded', 'paused', 'aborted'].includes((last = await rollout()).status), 'the rollout ends', 60_000, 100).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(last)}`);
    });
    assert.equal(last.status, 'succeeded', JSON.stringify(last.lastCheck));
    // None forgotten: every device runs the bundle and the rollout counts it active.
    await waitFor(async () => devices.every((d) => d.active === bundles[1]), 'every device on v2', 30_000, 50);
    assert.deepEqual(last.devices.map((d: { state: string }) => d.state), devices.map(() => 'active'));
    // None notified twice: one signed manifest (one counter) of the bundle per device, however often it was delivered.
    for (const d of devices) assert.equal(d.countersFor(bundles[1]).length, 1, `${d.id} got ${JSON.stringify(d.received)}`);
    // Each stage entered once, one completion, one cohort deployment.
    const events = (await cp.api('GET', '/api/v1/events/recent?kind=rollout&limit=1000')).body.items.filter((e: { subject: string }) => e.subject === id);
    assert.deepEqual(events.map((e: { type: string; data: { stage: number } }) => [e.type, e.data.stage]), [['rollout.created', 0], ['rollout.stage_advanced', 1], ['rollout.stage_advanced', 2], ['rollout.completed', 2]]);
    const deployments = (await cp.api('GET', '/api/v1/deployments')).body.deployments.filter((x: { id: string }) => x.id === id.replace(/^rol_/, 'dep_'));
    assert.equal(deployments.length, 1);
  });
});
