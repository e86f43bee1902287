// End to end, everything real: the control plane, the CLI (child processes) and two agents (separate
// processes and data dirs) on loopback. push model → build bundle → deploy to a cohort → both agents
// report active → local inference answers with the new version; then an upgrade and a key rotation.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { AgentProcess, api, freePort, waitFor } from '../agent/testing/harness.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');
const ROW = { f0: 0.5, f1: -1, f2: 2, f3: 0.1, f4: 0, f5: 1.5, f6: -0.3, f7: 0.8 };

async function directLogits(bytes: Uint8Array): Promise<number[]> {
  const s = await ort.InferenceSession.create(bytes);
  const out = await s.run({ features: new ort.Tensor('float32', Float32Array.from(Object.values(ROW)), [1, 8]) });
  await s.release();
  return Array.from(out.logits.data as Float32Array);
}

describe('end to end: deploy to a cohort of two agent processes', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  const agents: Array<{ proc: AgentProcess; port: number; dataDir: string; id?: string }> = [];

  const cli = async (...args: string[]) => {
    const r = await runCli(['--json', ...args], env);
    assert.equal(r.code, 0, `flotilla ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const activeVersions = async () =>
    Promise.all(
      agents.map(async (a) => {
        const d = (await cp.api('GET', `/api/v1/devices/${a.id}`)).body;
        return d.updateState === 'active' ? (d.reported?.active?.model?.version as number) : undefined;
      }),
    );

  before(async () => {
    cp = await startControlPlane();
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-e2e-'));
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.proc.stop()));
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('two agents enroll, a cohort deployment makes both serve v1, then v2', async () => {
    const keys = await cli('keys', 'init', '--root-key', path.join(dir, 'root.key'));
    await writeFile(path.join(dir, 'v1.onnx'), gemmModel({ seed: 1 }));
    await writeFile(path.join(dir, 'v2.onnx'), gemmModel({ seed: 2 }));
    await cli('models', 'push', path.join(dir, 'v1.onnx'), '--name', 'tabular-demo');
    const built = await cli('bundles', 'build', 'tabular-demo@1', '--def', BUNDLE_DEF);
    assert.match(built.id, /^bnd_/);
    await cli('cohorts', 'create', 'lab', '--selector', 'site=lab');
    const token = (await cli('enroll-tokens', 'create', '--labels', 'site=lab', '--max-uses', '2')).token;

    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const dataDir = path.join(dir, `agent-${i}`);
      const proc = new AgentProcess(
        ['--server', cp.url, '--enroll-token', token, '--data-dir', dataDir, '--api-port', String(port), '--trust-root', keys.rootPublicKey, '--probation-ms', '200', '--reconnect-min-ms', '100', '--reconnect-max-ms', '1000'],
        { FLOTILLA_AGENT_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG ?? 'warn' },
      ).start();
      agents.push({ proc, port, dataDir });
    }
    await waitFor(async () => (await cp.api('GET', '/api/v1/devices?selector=site%3Dlab')).body.devices.filter((d: { online: boolean }) => d.online).length === 2, 'both agents online', 30_000);
    const members = (await cli('cohorts', 'show', 'lab')).members as Array<{ id: string }>;
    assert.equal(members.length, 2);
    for (const [i, m] of [...members].entries()) agents[i].id = m.id;
    // Map agents to device ids through their local status API.
    for (const a of agents) a.id = (await api(a.port, 'GET', '/v1/status')).body.deviceId ?? a.id;

    const t0 = performance.now();
    const dep = await cli('deploy', 'tabular-demo@1', '--cohort', 'lab');
    assert.equal(dep.devices.length, 2);
    await waitFor(async () => (await activeVersions()).every((v) => v === 1), 'both agents active on v1', 60_000);
    console.log(`deploy → active on 2 agents: ${(performance.now() - t0).toFixed(0)} ms`);

    const expected1 = await directLogits(gemmModel({ seed: 1 }));
    for (const a of agents) {
      const r = await api(a.port, 'POST', '/v1/predict', { features: ROW });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.bundle.model.version, 1);
      assert.ok(['low', 'medium', 'high'].includes(r.body.predictions[0].label), JSON.stringify(r.body.predictions));
      const logits = r.body.outputs.logits.data as number[];
      logits.forEach((v, i) => assert.ok(Math.abs(v - expected1[i]) < 1e-5, `logit ${i}: ${v} vs ${expected1[i]}`));
    }
    const shown = await runCli(['devices', 'show', agents[0].id!], env);
    assert.match(shown.stdout, /active\s+bnd_\w+ \(tabular-demo@1, counter 1\)/);
    assert.match(shown.stdout, /updateState\s+active/);

    // Upgrade: v2 replaces v1 on both, and answers change accordingly.
    await cli('models', 'push', path.join(dir, 'v2.onnx'), '--name', 'tabular-demo', '--parent', 'tabular-demo@1');
    await cli('bundles', 'build', 'tabular-demo@2', '--def', BUNDLE_DEF);
    await cli('deploy', 'tabular-demo@2', '--cohort', 'lab');
    await waitFor(async () => (await activeVersions()).every((v) => v === 2), 'both agents active on v2', 60_000);
    const expected2 = await directLogits(gemmModel({ seed: 2 }));
    for (const a of agents) {
      const r = await api(a.port, 'POST', '/v1/predict', { features: ROW });
      assert.equal(r.body.bundle.model.version, 2);
      (r.body.outputs.logits.data as number[]).forEach((v, i) => assert.ok(Math.abs(v - expected2[i]) < 1e-5));
    }
  });

  test('key rotation reaches the agents over MQTT and they keep verifying', async () => {
    await cli('keys', 'rotate', '--root-key', path.join(dir, 'root.key'));
    let last: unknown;
    // The re-signed desired state carries key list v2; each agent accepts it (no failure reported).
    await waitFor(
      async () => {
        const ds = await Promise.all(agents.map(async (a) => (await cp.api('GET', `/api/v1/devices/${a.id}`)).body));
        last = ds.map((d) => ({ state: d.updateState, kl: d.reported?.keylistVersion, active: d.reported?.active, err: d.reported?.lastError }));
        return ds.every((d) => d.reported?.keylistVersion === 2 && d.updateState === 'active' && d.reported?.active?.model?.version === 2);
      },
      'agents on key list v2, still active on v2',
      30_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(last)}`);
    });
    for (const a of agents) assert.equal((await api(a.port, 'POST', '/v1/predict', { features: ROW })).status, 200);
  });

  test('device commands: ping over cmd/res, rollback as a signed manifest; bad commands and offline devices refused', async () => {
    const [a, b] = agents;
    const ping = await runCli(['--json', 'devices', 'ping', a.id!], env);
    assert.equal(ping.code, 0, ping.stderr);
    assert.equal(JSON.parse(ping.stdout).status, 'ok');
    // Rollback is a signed manifest for the previous bundle (v1) with the next counter.
    const rb = await runCli(['--json', 'devices', 'rollback', b.id!], env);
    assert.equal(rb.code, 0, rb.stderr);
    const back = JSON.parse(rb.stdout);
    await waitFor(async () => {
      const d = (await cp.api('GET', `/api/v1/devices/${b.id}`)).body;
      return d.updateState === 'active' && d.reported?.active?.model?.version === 1 && d.reported.active.counter === back.counter;
    }, 'rolled back to v1 through a signed manifest', 30_000);
    assert.equal((await api(b.port, 'POST', '/v1/predict', { features: ROW })).body.bundle.model.version, 1, 'serving v1 after rollback');
    const audit = await cp.api('GET', '/api/v1/audit?action=device.rollback');
    assert.equal(audit.body.entries[0].target, b.id);
    assert.equal((await cp.api('POST', `/api/v1/devices/${a.id}/commands`, { json: { command: 'reboot' } })).status, 400);
    await a.proc.stop();
    await waitFor(async () => (await cp.api('GET', `/api/v1/devices/${a.id}`)).body.online === false, 'agent offline', 20_000);
    const offline = await runCli(['devices', 'ping', a.id!], env);
    assert.equal(offline.code, 1);
    assert.match(offline.stderr, /offline/);
  });
});
