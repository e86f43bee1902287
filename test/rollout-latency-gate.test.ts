// The latency regression gate's default (issue 14: ratio 1.2, on unless turned off) on devices that
// serve no requests: after the bake the gate says `no-data`, never `pass`. Without a stage limit the
// rollout is not held by it (it finishes, the verdict and history record the gate as not measured);
// with one, the stage waits up to the limit and then fails naming the gate. Devices are simulated over
// real MQTT (test/helpers/fake-device.ts) and send no telemetry.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../agent/testing/harness.ts';
import type { TestPlane } from './helpers/control-plane.ts';
import { startRolloutLab, type RolloutLab } from './helpers/rollout-lab.ts';
import type { GateResult } from '../server/rollouts/rollout-gates.ts';

describe('the latency regression gate without data', () => {
  let lab: RolloutLab;
  let cp: TestPlane;
  let bundles: string[];

  before(async () => {
    lab = await startRolloutLab({ versions: 3, devices: 2, cohort: 'lab' });
    ({ cp, bundles } = lab);
  });
  after(async () => {
    await lab?.stop();
  });

  const finish = async (id: string) => {
    let last: any;
    await waitFor(async () => (last = (await cp.api('GET', `/api/v1/rollouts/${id}`)).body).status !== 'running', `rollout ${id} ends`, 30_000, 50);
    return last;
  };

  test('on by default; without a stage limit the rollout finishes and records the gate as not measured', async () => {
    const r = await cp.api('POST', '/api/v1/rollouts', { json: { bundle: bundles[1], cohort: 'lab', stages: [0.5, 1], bakeS: 1 } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.gates.maxLatencyRatio, 1.2);
    const done = await finish(r.body.id);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.lastCheck));
    for (const h of done.lastCheck.history) {
      const g = (h.gates as GateResult[]).find((x) => x.name === 'latencyRegression')!;
      assert.equal(g.status, 'no-data', JSON.stringify(g));
      assert.equal(g.value, null);
      assert.match(g.reason, /no requests in the hour before the rollout \(no baseline\) and no requests served on the new bundle/);
      assert.match(h.verdict, /not measured: latencyRegression no-data/);
    }
  });

  test('with a stage limit the stage waits for the data up to the limit and then fails naming the gate', async () => {
    const r = await cp.api('POST', '/api/v1/rollouts', { json: { bundle: bundles[2], cohort: 'lab', stages: [1], bakeS: 0, gates: { stageTimeoutS: 3 } } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const done = await finish(r.body.id);
    assert.equal(done.status, 'paused', JSON.stringify(done.lastCheck));
    assert.match(done.lastCheck.verdict, /^gate failed: stage limit of 3 s passed with latencyRegression no-data \(/);
    // Every device had reported the bundle active: none is timed out, the missing measurement alone failed the stage.
    assert.deepEqual(done.devices.map((d: { state: string }) => d.state), ['active', 'active']);
    assert.equal((await cp.api('POST', `/api/v1/rollouts/${r.body.id}/abort`, { json: {} })).status, 200);
  });

  test('null turns the gate off: no latencyRegression gate at all', async () => {
    const r = await cp.api('POST', '/api/v1/rollouts', { json: { bundle: bundles[1], cohort: 'lab', stages: [1], bakeS: 0, gates: { maxLatencyRatio: null } } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.gates.maxLatencyRatio, null);
    const done = await finish(r.body.id);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.lastCheck));
    assert.ok(!(done.lastCheck.history.at(-1).gates as GateResult[]).some((g) => g.name === 'latencyRegression'));
  });
});
