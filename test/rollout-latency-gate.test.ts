// The latency regression gate's default (issue 14: ratio 1.2, on unless turned off) on devices that
// serve no requests: after the bake the gate says `no-data`, never `pass`. Without a stage limit the
// rollout is not held by it (it finishes, the verdict and history record the gate as not measured);
// with one, the stage waits up to the limit and then fails naming the gate. Devices are simulated over
// real MQTT (test/helpers/fake-device.ts) and send no telemetry.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../agent/testing/harness.ts';
import { createKeyList, signKeyList } from '../firmware-bundles/key-list.ts';
import { generateKeyPair } from '../firmware-bundles/keys.ts';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { FakeDevice } from './helpers/fake-device.ts';
import { gemmModel } from './helpers/models.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo', 'bundle.json');

interface Gate {
  name: string;
  value: number | null;
  threshold: string;
  status: string;
  reason: string;
}

describe('the latency regression gate without data', () => {
  let cp: TestPlane;
  const devices: FakeDevice[] = [];
  const bundles: string[] = [];

  before(async () => {
    cp = await startControlPlane({ schedulerTickMs: 100, driftCron: 'off' });
    const root = generateKeyPair();
    const release = (await cp.api('POST', '/api/v1/keys/release')).body;
    const list = createKeyList({ version: 1, root, keys: [release], threshold: 1, expiresAt: new Date(Date.now() + 86400e3) });
    assert.equal((await cp.api('PUT', '/api/v1/keys/keylist', { json: signKeyList(list, root.privateKeyPem) })).status, 200);
    const { definition, labels } = await loadBundleDefinition(BUNDLE_DEF);
    for (let v = 1; v <= 3; v++) {
      assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel({ seed: v }) as unknown as BodyInit })).status, 201);
      const b = await cp.api('POST', '/api/v1/bundles', { json: { model: `tab@${v}`, definition, labels } });
      assert.equal(b.status, 201, JSON.stringify(b.body));
      bundles.push(b.body.id);
    }
    assert.equal((await cp.api('POST', '/api/v1/cohorts', { json: { name: 'lab', selector: 'site=lab' } })).status, 201);
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'lab' } } })).body.token;
    for (let i = 0; i < 2; i++) devices.push(await FakeDevice.enroll(cp, token));
    assert.equal((await cp.api('POST', '/api/v1/deployments', { json: { bundle: bundles[0], cohort: 'lab' } })).status, 201);
    await waitFor(async () => devices.every((d) => d.active === bundles[0]), 'every device on v1', 30_000, 50);
  });
  after(async () => {
    await Promise.all(devices.map((d) => d.close()));
    await cp.stop();
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
      const g = (h.gates as Gate[]).find((x) => x.name === 'latencyRegression')!;
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
    assert.ok(!(done.lastCheck.history.at(-1).gates as Gate[]).some((g) => g.name === 'latencyRegression'));
  });
});
