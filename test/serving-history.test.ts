// What served when, end to end: a real agent process goes v1 → v2 → signed rollback (v1) → v3, and the
// serving history answers "what served at t" with the right version, deployment, route and starter at a
// point inside each interval — over the REST API and the CLI, per device, cohort and model; a deployment
// replaced by newer ones keeps its outcome (superseded devices, what each ran).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AgentProcess, api, freePort, waitFor } from '../agent/testing/harness.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');
const ROW = { f0: 0.5, f1: -1, f2: 2, f3: 0.1, f4: 0, f5: 1.5, f6: -0.3, f7: 0.8 };

describe('serving history: v1 → v2 → rollback → v3 on a real agent', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  let agent: AgentProcess;
  let port: number;
  let deviceId: string;

  const cli = async (...args: string[]) => {
    const r = await runCli(['--json', ...args], env);
    assert.equal(r.code, 0, `flotilla ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  /** Waits until the device reports `version` active, checks the agent answers with it, and returns a time inside that interval. */
  const servingAt = async (version: number, counter?: number): Promise<string> => {
    await waitFor(async () => {
      const d = (await cp.api('GET', `/api/v1/devices/${deviceId}`)).body;
      return d.updateState === 'active' && d.reported?.active?.model?.version === version && (counter === undefined || d.reported.active.counter === counter);
    }, `device active on v${version}`, 120_000);
    assert.equal((await api(port, 'POST', '/v1/predict', { features: ROW })).body.bundle.model.version, version);
    // The interval is written with the report that made the device active; poll until it is visible.
    await waitFor(async () => (await cp.api('GET', `/api/v1/history?device=${deviceId}&limit=1`)).body.intervals[0]?.version === version, `v${version} interval recorded`, 60_000);
    return new Date().toISOString();
  };

  before(async () => {
    cp = await startControlPlane({ deviceStateFlushMs: 50 });
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-history-'));
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
  });
  after(async () => {
    await agent?.stop();
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('history answers what served at a point inside each interval', async () => {
    const keys = await cli('keys', 'init', '--root-key', path.join(dir, 'root.key'));
    for (const v of [1, 2, 3]) {
      await writeFile(path.join(dir, `v${v}.onnx`), gemmModel({ seed: v }));
      await cli('models', 'push', path.join(dir, `v${v}.onnx`), '--name', 'tabular-demo');
      await cli('bundles', 'build', `tabular-demo@${v}`, '--def', BUNDLE_DEF);
    }
    await cli('cohorts', 'create', 'berlin-pis', '--selector', 'site=berlin');
    const token = (await cli('enroll-tokens', 'create', '--labels', 'site=berlin', '--max-uses', '1')).token;
    port = await freePort();
    agent = new AgentProcess(
      ['--server', cp.url, '--enroll-token', token, '--data-dir', path.join(dir, 'agent'), '--api-port', String(port), '--trust-root', keys.rootPublicKey, '--probation-ms', '200', '--reconnect-min-ms', '100', '--reconnect-max-ms', '1000'],
      { FLOTILLA_AGENT_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG ?? 'warn' },
    ).start();
    await waitFor(async () => (await cp.api('GET', '/api/v1/devices?selector=site%3Dberlin')).body.devices.some((d: { online: boolean }) => d.online), 'agent online', 60_000);
    deviceId = (await cp.api('GET', '/api/v1/devices?selector=site%3Dberlin')).body.devices[0].id;

    const before = new Date().toISOString();
    const dep1 = await cli('deploy', 'tabular-demo@1', '--cohort', 'berlin-pis');
    const t1 = await servingAt(1);
    const dep2 = await cli('deploy', 'tabular-demo@2', '--device', deviceId);
    const t2 = await servingAt(2);
    const rb = await cli('devices', 'rollback', deviceId);
    const t3 = await servingAt(1, rb.counter);
    const dep3 = await cli('deploy', 'tabular-demo@3', '--cohort', 'berlin-pis');
    const t4 = await servingAt(3);

    const at = async (t: string, query = `device=${deviceId}`) => {
      const r = await cp.api('GET', `/api/v1/history?${query}&at=${encodeURIComponent(t)}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body as { intervals: Array<Record<string, unknown>>; serving: Array<{ model: string; version: number; devices: number }> };
    };
    assert.deepEqual((await at(before)).intervals, [], 'nothing served before the first deployment');
    const expected = [
      { t: t1, version: 1, deploymentId: dep1.id, via: 'deployment', cohort: 'berlin-pis' },
      { t: t2, version: 2, deploymentId: dep2.id, via: 'deployment', cohort: null },
      { t: t3, version: 1, deploymentId: rb.deploymentId, via: 'rollback', cohort: null },
      { t: t4, version: 3, deploymentId: dep3.id, via: 'deployment', cohort: 'berlin-pis' },
    ];
    for (const e of expected) {
      const r = await at(e.t);
      assert.equal(r.intervals.length, 1, `exactly one interval at ${e.t}: ${JSON.stringify(r.intervals)}`);
      const [i] = r.intervals;
      assert.deepEqual(
        { version: i.version, deploymentId: i.deploymentId, via: i.via, cohort: i.cohort, startedBy: i.startedBy, model: i.model },
        { version: e.version, deploymentId: e.deploymentId, via: e.via, cohort: e.cohort, startedBy: i.startedBy, model: 'tabular-demo' },
        `at ${e.t}`,
      );
      assert.match(String(i.startedBy), /^bootstrap-admin /, 'who started it');
      assert.ok((i.from as string) <= e.t && (i.to === null || (i.to as string) > e.t));
      assert.deepEqual(r.serving.map((s) => [s.version, s.devices]), [[e.version, 1]]);
    }

    // The whole history: four intervals, newest first, each ending where the next begins; only the last is open.
    const all = (await cp.api('GET', `/api/v1/history?device=${deviceId}`)).body.intervals as Array<{ version: number; from: string; to: string | null }>;
    assert.deepEqual(all.map((i) => i.version), [3, 1, 2, 1]);
    assert.equal(all[0].to, null);
    for (let k = 1; k < all.length; k++) assert.equal(all[k].to, all[k - 1].from);
    // The device's live reports move its lastSeen (only replays of retained copies do not).
    const device = (await cp.api('GET', `/api/v1/devices/${deviceId}`)).body;
    assert.ok(device.lastSeen >= all[0].from, `lastSeen ${device.lastSeen} follows the report that activated v3 (${all[0].from})`);
    assert.equal(device.reported.lastError, null);
    // Pagination like every list.
    assert.deepEqual((await cp.api('GET', `/api/v1/history?device=${deviceId}&limit=2&offset=2`)).body.intervals.map((i: { version: number }) => i.version), [2, 1]);

    // By cohort and by model, at the same points (the device is a member of berlin-pis throughout).
    assert.deepEqual((await at(t2, 'cohort=berlin-pis')).serving.map((s) => s.version), [2]);
    assert.deepEqual((await at(t3, 'model=tabular-demo')).serving.map((s) => s.version), [1]);

    // Each deployment keeps its outcome: dep1's device moved on (superseded, having served v1), dep3's is active on v3.
    const st1 = (await cp.api('GET', `/api/v1/deployments/${dep1.id}/status`)).body;
    assert.deepEqual(st1.devices, []);
    assert.deepEqual(st1.superseded.map((d: Record<string, unknown>) => [d.deviceId, d.model, d.supersededBy]), [[deviceId, 'tabular-demo@1', dep3.id]]);
    // superseded=false (the console's cohorts page): the same status without the superseded list.
    const bare1 = await cp.api('GET', `/api/v1/deployments/${dep1.id}/status?superseded=false`);
    assert.equal(bare1.status, 200);
    assert.deepEqual(bare1.body, { ...st1, superseded: [] });
    assert.equal((await cp.api('GET', `/api/v1/deployments/${dep1.id}/status?superseded=no`)).status, 400);
    const st3 = (await cp.api('GET', `/api/v1/deployments/${dep3.id}/status`)).body;
    assert.deepEqual(st3.devices.map((d: Record<string, unknown>) => [d.deviceId, d.state, d.activeModel]), [[deviceId, 'active', 'tabular-demo@3']]);
    assert.equal(st3.counts.active, 1);
    const shownDep = await runCli(['deployments', 'show', dep1.id], env);
    assert.match(shownDep.stdout, new RegExp(`superseded[^\\n]*\\n.*\\n${deviceId}.*tabular-demo@1.*${dep3.id}`));
    const listed = (await cli('deployments', 'ls')) as Array<{ id: string; superseded: number; active: number }>;
    assert.deepEqual(listed.filter((d) => d.id === dep1.id || d.id === dep3.id).map((d) => [d.id, d.active, d.superseded]), [[dep3.id, 1, 0], [dep1.id, 0, 1]]);

    // The CLI asks the same question.
    const shown = await cli('history', '--cohort', 'berlin-pis', '--at', t2);
    assert.equal(shown.intervals[0].version, 2);
    const human = await runCli(['history', '--device', deviceId], env);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, new RegExp(`tabular-demo@1 .*rollback ${rb.deploymentId}`));
    assert.match(human.stdout, /tabular-demo@3 .* now /);
  });

  test('bad input: 4xx with {error:{code,message,details}}; the CLI says what to fix', async () => {
    const bad = await cp.api('GET', '/api/v1/history?at=yesterday');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'invalid_request');
    assert.equal((await cp.api('GET', '/api/v1/history?device=dev_nope')).status, 404);
    assert.equal((await cp.api('GET', '/api/v1/history?cohort=nope')).status, 404);
    assert.equal((await cp.api('GET', '/api/v1/history?model=nope')).body.error.code, 'not_found');
    const none = await runCli(['history'], env);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /--device/);
    const badAt = await runCli(['history', '--device', deviceId, '--at', '25:99'], env);
    assert.equal(badAt.code, 2);
    assert.match(badAt.stderr, /--at/);
  });
});
