// The drift gate of a staged rollout (issue 14): the candidate version has a reference profile, the
// stage's devices switch to it and send statistics windows whose inputs are shifted, the drift
// evaluation opens an alert for the new version on the cohort during the bake — and the stage fails on
// the drift gate with that alert as its reason, the rollout rolls back. Devices are simulated over real
// MQTT (test/helpers/fake-device.ts); their windows are sketched with protocol/'s code as an agent does.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../agent/testing/harness.ts';
import type { SketchLayout } from '../protocol/sketch/feature-set-sketch.ts';
import type { TestPlane } from './helpers/control-plane.ts';
import { generateRows, rowsToCsv, sketchOf, statsMessage } from './helpers/device-stats.ts';
import type { FakeDevice } from './helpers/fake-device.ts';
import { startRolloutLab, type RolloutLab } from './helpers/rollout-lab.ts';
import type { GateResult } from '../server/rollouts/rollout-gates.ts';

describe('the drift gate', () => {
  let lab: RolloutLab;
  let cp: TestPlane;
  let devices: FakeDevice[];
  let bundles: string[];
  let layout: SketchLayout;

  before(async () => {
    lab = await startRolloutLab({
      versions: 2,
      devices: 2,
      cohort: 'lab',
      plane: { ingestFlushMs: 50 },
      beforeBundles: async (plane) => {
        // The candidate (v2) has a reference profile: its bundle ships the layout the devices sketch on.
        const ref = await plane.api('POST', '/api/v1/models/tab/versions/2/reference', { body: rowsToCsv(generateRows(5000, 1)), headers: { 'content-type': 'text/csv' } });
        assert.equal(ref.status, 201, JSON.stringify(ref.body));
        layout = (await plane.api('GET', '/api/v1/models/tab/versions/2/reference')).body.layout;
      },
    });
    ({ cp, devices, bundles } = lab);
  });
  after(async () => {
    await lab?.stop();
  });

  test('a candidate whose inputs drift fails the stage on the drift gate and the rollout rolls back', async () => {
    // A long bake, so nothing but the drift gate can end the stage; the latency gate is not the subject.
    const r = await cp.api('POST', '/api/v1/rollouts', { json: { bundle: bundles[1], cohort: 'lab', stages: [1], bakeS: 3600, gates: { onFailure: 'rollback', maxLatencyRatio: null } } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const id: string = r.body.id;
    const rollout = async () => (await cp.api('GET', `/api/v1/rollouts/${id}`)).body;
    await waitFor(async () => (await rollout()).devices.every((d: { state: string }) => d.state === 'active'), 'the stage active on v2', 30_000, 50);
    const baking = await rollout();
    assert.equal(baking.status, 'running');
    assert.equal(baking.lastCheck.gates.find((g: GateResult) => g.name === 'drift').status, 'pass', 'no alert yet');

    // The stage's devices serve inputs shifted by 3σ on f3 and report their windows.
    const now = Date.now();
    for (const [i, d] of devices.entries()) {
      const sketch = sketchOf(layout, generateRows(600, 50 + i, { feature: 'f3', sigmas: 3 }));
      await d.publish('stats', statsMessage({ deviceId: d.id, bundleId: bundles[1], model: { name: 'tab', version: 2 }, seq: 1, start: new Date(now - 70_000), end: new Date(now - 10_000), sketch }));
    }
    await waitFor(async () => (await cp.api('GET', '/api/v1/drift?model=tab@2&cohort=lab&window=15m')).body.windows === 2, 'both windows ingested', 30_000, 50);
    const evaluated = await cp.api('POST', '/api/v1/drift/evaluate', { json: { model: 'tab@2', cohort: 'lab', window: '15m' } });
    assert.equal(evaluated.status, 200, JSON.stringify(evaluated.body));
    assert.equal(evaluated.body.evaluations[0].transition, 'opened', JSON.stringify(evaluated.body));
    const alerts = (await cp.api('GET', '/api/v1/alerts?status=open')).body.alerts;
    const alert = alerts.find((a: { cohort: string }) => a.cohort === 'lab');
    assert.ok(alert, JSON.stringify(alerts));

    let done: any;
    await waitFor(async () => (done = await rollout()).status !== 'running', 'the stage ends', 30_000, 50);
    assert.equal(done.status, 'aborted', JSON.stringify(done.lastCheck));
    assert.match(done.lastCheck.verdict, /^gate failed: drift 1 not = 0 alerts/);
    const drift = done.lastCheck.history.at(-1).gates.find((g: GateResult) => g.name === 'drift') as GateResult;
    assert.equal(drift.status, 'fail');
    assert.equal(drift.value, 1);
    assert.match(drift.reason, new RegExp(`drift alert ${alert.id} \\(.*\\) on the new version`));
    // The other gates passed: the drift gate alone ended the stage.
    for (const g of done.lastCheck.history.at(-1).gates as GateResult[]) if (g.name !== 'drift') assert.notEqual(g.status, 'fail', JSON.stringify(g));
    await waitFor(async () => devices.every((d) => d.active === bundles[0]), 'the devices back on v1', 30_000, 50);
  });
});
