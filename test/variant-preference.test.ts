// Cohort variant preference: devices of a cohort preferring int8 get a bundle of the version's ready
// int8 child (built from the parent bundle's definition on first use), others the version itself;
// direct device deployments and late joiners follow the device's cohorts; "none" clears it.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { exportMlpOnnx, trainMlp } from '../server/training/mlp.ts';
import { makeTabularRows, tabularToCsv } from '../server/training/synthetic-tabular.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';

const FACTS = { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' };
const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');

describe('cohort variant preference', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  const tokens: Record<string, string> = {};

  before(async () => {
    cp = await startControlPlane();
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-variants-'));
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    const model = exportMlpOnnx(trainMlp(makeTabularRows({ n: 1000, seed: 21 }), { seed: 1, epochs: 20 }));
    assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: model as BodyInit })).status, 201);
    const file = path.join(dir, 'val.csv');
    await writeFile(file, tabularToCsv(makeTabularRows({ n: 300, seed: 22 })));
    for (const args of [
      ['datasets', 'push', file, '--name', 'val'],
      ['keys', 'init', '--root-key', path.join(dir, 'root.key')],
      ['bundles', 'build', 'tab@1', '--def', BUNDLE_DEF],
      ['cohorts', 'create', 'small', '--selector', 'mem=small'],
      ['cohorts', 'create', 'large', '--selector', 'mem=large'],
    ]) {
      const r = await runCli(args, env);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    for (const mem of ['small', 'large']) tokens[mem] = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { mem } } })).body.token;
  });
  after(async () => {
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const enroll = async (mem: string): Promise<string> => {
    const r = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: tokens[mem], facts: FACTS } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.deviceId;
  };
  /** The model version a device's desired bundle carries, as `devices show` reports it. */
  const desiredModel = async (id: string): Promise<string> => {
    const shown = await runCli(['--json', 'devices', 'show', id], env);
    assert.equal(shown.code, 0, shown.stderr);
    const bundleId = JSON.parse(shown.stdout).desired.bundleId;
    return (await cp.api('GET', `/api/v1/bundles/${bundleId}`)).body.model;
  };
  const bundleCount = async () => (await cp.api('GET', '/api/v1/bundles')).body.bundles.length;

  test('an int8-preferring cohort gets the int8 child; the other cohort and a device without preference get the version itself', async () => {
    const smalls = [await enroll('small'), await enroll('small')];
    const large = await enroll('large');
    const pref = await runCli(['cohorts', 'prefer-variant', 'small', 'int8'], env);
    assert.equal(pref.code, 0, pref.stderr);
    assert.match(pref.stdout, /cohort small prefers int8/);

    // No int8 child yet: the preference falls back to the version itself.
    const before = JSON.parse((await runCli(['--json', 'deploy', 'tab@1', '--cohort', 'small'], env)).stdout);
    assert.deepEqual(new Set(Object.values(before.assignments)), new Set([before.bundleId]));

    const opt = await runCli(['--json', 'optimize', 'tab@1', '--quantize', 'int8', '--eval', 'val@1'], env);
    assert.equal(opt.code, 0, opt.stderr);
    assert.equal(JSON.parse(opt.stdout).version.status, 'ready');

    const bundlesBefore = await bundleCount();
    const dep = await runCli(['--json', 'deploy', 'tab@1', '--cohort', 'small'], env);
    assert.equal(dep.code, 0, dep.stderr);
    const res = JSON.parse(dep.stdout);
    assert.deepEqual(res.devices.sort(), [...smalls].sort());
    for (const id of smalls) assert.equal(await desiredModel(id), 'tab@2');
    assert.equal(await bundleCount(), bundlesBefore + 1, 'the int8 bundle is built once, from the parent bundle definition');
    const variantBundle = (await cp.api('GET', `/api/v1/bundles/${res.assignments[smalls[0]]}`)).body;
    assert.equal(variantBundle.name, 'tabular-demo');
    assert.notEqual(variantBundle.id, res.bundleId);
    // The deployment's status names the bundle each device actually got: the variant's, not the deployment's.
    const status = async (id: string) => (await cp.api('GET', `/api/v1/deployments/${id}/status`)).body;
    const st = await status(res.id);
    assert.equal(st.bundleId, res.bundleId);
    assert.deepEqual(st.devices.map((d: { deviceId: string; bundleId: string; state: string }) => [d.deviceId, d.bundleId, d.state]).sort(), smalls.map((id) => [id, variantBundle.id, 'pending']).sort());
    assert.equal(st.counts.pending, 2);

    const big = JSON.parse((await runCli(['--json', 'deploy', 'tab@1', '--cohort', 'large'], env)).stdout);
    assert.equal(big.assignments[large], big.bundleId);
    assert.equal(await desiredModel(large), 'tab@1');

    // A direct deployment to a small device goes through its cohort's preference, reusing the bundle.
    const direct = JSON.parse((await runCli(['--json', 'deploy', 'tab@1', '--device', smalls[0]], env)).stdout);
    assert.equal(direct.assignments[smalls[0]], variantBundle.id);
    assert.equal(await bundleCount(), bundlesBefore + 1);

    // A late joiner of the small cohort converges to the variant too.
    const late = await enroll('small');
    assert.equal(await desiredModel(late), 'tab@2');
    // The cohort deployment's status: smalls[0] moved on to the direct deployment, the late joiner came in.
    const after = await status(res.id);
    assert.deepEqual(after.devices.map((d: { deviceId: string }) => d.deviceId).sort(), [smalls[1], late].sort());
    assert.ok(after.devices.every((d: { bundleId: string }) => d.bundleId === variantBundle.id));
    assert.equal(after.counts.pending, 2);
    assert.equal((await status(direct.id)).devices[0].bundleId, variantBundle.id);

    // The audit names the variant bundle the cohort got.
    const audit = (await cp.api('GET', '/api/v1/audit?action=deployment.create')).body.entries;
    assert.equal(audit.find((e: { target: string }) => e.target === res.id).details.variantBundle, variantBundle.id);
  });

  test('"none" clears the preference; a rejected variant is never picked', async () => {
    assert.equal((await runCli(['cohorts', 'prefer-variant', 'small', 'none'], env)).code, 0);
    const plain = JSON.parse((await runCli(['--json', 'deploy', 'tab@1', '--cohort', 'small'], env)).stdout);
    assert.deepEqual(new Set(Object.values(plain.assignments)), new Set([plain.bundleId]));

    // A pruned child that breaks the budget is rejected, so `pruned` preference falls back to tab@1.
    await runCli(['models', 'budgets', 'tab', '--min-agreement', '1'], env);
    const pruned = JSON.parse((await runCli(['--json', 'optimize', 'tab@1', '--prune', '0.9', '--eval', 'val@1'], env)).stdout);
    assert.equal(pruned.version.status, 'rejected');
    await runCli(['cohorts', 'prefer-variant', 'small', 'pruned'], env);
    const fallback = JSON.parse((await runCli(['--json', 'deploy', 'tab@1', '--cohort', 'small'], env)).stdout);
    assert.deepEqual(new Set(Object.values(fallback.assignments)), new Set([fallback.bundleId]));
    const bad = await runCli(['cohorts', 'prefer-variant', 'small', 'Not A Variant'], env);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /invalid variant/);
  });
});
