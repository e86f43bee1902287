// A rollout that times out and rolls back, with a real agent (issue 14): the cohort has the agent and
// a device that enrolled but never connects. The stage cannot finish, its limit passes, the silent
// device is recorded timed out and the rollout rolls back — and the agent, which had switched, is
// seen serving the previous version again (a re-signed manifest for it, delivered and applied), not
// only reassigned on the server.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { api, waitFor } from '../agent/testing/harness.ts';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import { gemmModel } from './helpers/models.ts';
import { startPlaneWithAgent, type PlaneWithAgent } from './helpers/plane-with-agent.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo', 'bundle.json');
const FACTS = { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' };

describe('end to end: a timed-out rollout rolls the agent back', () => {
  let p: PlaneWithAgent;
  const serving = async () => (await api(p.port, 'GET', '/v1/status')).body.active?.model?.version as number | undefined;

  before(async () => {
    p = await startPlaneWithAgent({ site: 'lab', prefix: 'flotilla-e2e-timeout-', plane: { schedulerTickMs: 200 } });
    // Through the API rather than the CLI: each CLI process costs seconds on a loaded machine.
    const { definition, labels } = await loadBundleDefinition(BUNDLE_DEF);
    for (const v of [1, 2]) {
      assert.equal((await p.cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel({ seed: v }) as unknown as BodyInit })).status, 201);
      const b = await p.cp.api('POST', '/api/v1/bundles', { json: { model: `tab@${v}`, definition, labels } });
      assert.equal(b.status, 201, JSON.stringify(b.body));
    }
    assert.equal((await p.cp.api('POST', '/api/v1/cohorts', { json: { name: 'lab', selector: 'site=lab' } })).status, 201);
    assert.equal((await p.cp.api('POST', '/api/v1/deployments', { json: { bundle: 'tab@1', cohort: 'lab' } })).status, 201);
    await waitFor(async () => (await serving()) === 1, 'the agent serving v1', 60_000, 100);
  });
  after(async () => {
    await p?.stop();
  });

  test('the silent device times out, the rollout rolls back and the agent serves v1 again', async () => {
    const token = (await p.cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'lab' } } })).body.token;
    const ghost = await p.cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } });
    assert.equal(ghost.status, 201, JSON.stringify(ghost.body));
    const r = await p.cp.api('POST', '/api/v1/rollouts', { json: { bundle: 'tab@2', cohort: 'lab', stages: [1], bakeS: 0, gates: { onFailure: 'rollback', stageTimeoutS: 10, maxLatencyRatio: null } } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const previous = r.body.previousBundleId as string;
    // The agent switches to v2 while the ghost keeps the stage waiting.
    await waitFor(async () => (await serving()) === 2, 'the agent serving v2', 60_000, 100);

    let done: any;
    await waitFor(async () => (done = (await p.cp.api('GET', `/api/v1/rollouts/${r.body.id}`)).body).status !== 'running', 'the rollout ends', 60_000, 200);
    assert.equal(done.status, 'aborted', JSON.stringify(done.lastCheck));
    assert.match(done.lastCheck.verdict, /stage limit of 10 s passed/);
    const byId = new Map(done.devices.map((d: { id: string; state: string; desiredBundle: string }) => [d.id, d]));
    assert.equal((byId.get(ghost.body.deviceId) as { state: string }).state, 'timed_out');
    assert.equal((byId.get(p.deviceId) as { desiredBundle: string }).desiredBundle, previous, 'reassigned on the server');
    // …and applied on the device: the agent runs v1 again (signed manifest above the v2 one).
    await waitFor(async () => (await serving()) === 1, 'the agent serving v1 again', 60_000, 100);
    const status = (await api(p.port, 'GET', '/v1/status')).body;
    assert.equal(status.active.bundleId, previous);
    await waitFor(async () => (await p.cp.api('GET', `/api/v1/rollouts/${r.body.id}`)).body.devices.find((d: { id: string }) => d.id === p.deviceId).state === 'rolled_back', 'the agent shown rolled back', 30_000, 200);
  });
});
