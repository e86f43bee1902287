// Monitoring that starts without a redeploy, everything real: the control plane, the CLI and an agent
// process serving the demo tabular model. The bundle is built and deployed before the version has a
// reference, so the agent can only sketch outputs and the server drops its windows (`no_reference`).
// Adding the reference re-signs the device's manifest with the layout (`agentConfig.statsLayout`,
// same bundle, next counter); the agent adopts it live and per-feature drift figures arrive — no new
// bundle, no new deployment. Replacing the reference (other bins) follows the same way.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { api, waitFor } from '../agent/testing/harness.ts';
import { runCli } from './helpers/cli.ts';
import type { TestPlane } from './helpers/control-plane.ts';
import { FEATURES, generateRows } from './helpers/device-stats.ts';
import { gemmModel } from './helpers/models.ts';
import { startPlaneWithAgent, type PlaneWithAgent } from './helpers/plane-with-agent.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');
const MODEL = 'tabular-demo';

describe('end to end: adding a reference starts monitoring on a running fleet without a redeploy', { timeout: 150_000 }, () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  let port = 0;
  let deviceId = '';
  let seed = 1000;

  const cli = (...args: string[]) => lab.cli(...args);
  const status = async () => (await api(port, 'GET', '/v1/status')).body;
  const predict = async (n = 200) => {
    const r = await api(port, 'POST', '/v1/predict', { features: generateRows(n, seed++).map((r) => r.values) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  };
  const metric = async (reason: string) => Number(new RegExp(`flotilla_mqtt_messages_dropped_total\\{channel="stats",reason="${reason}"\\} (\\d+)`).exec(await (await fetch(`${cp.url}/metrics`)).text())?.[1] ?? 0);
  const drift = () => cp.api('GET', `/api/v1/drift?model=${MODEL}@1&cohort=lab&window=1h`);

  let lab: PlaneWithAgent;
  before(async () => {
    // Telemetry every second and 2 s stats windows, so dropped and accepted windows show up quickly.
    lab = await startPlaneWithAgent({ site: 'lab', prefix: 'flotilla-e2e-refl-', agentArgs: ['--reconnect-max-ms', '500', '--telemetry-interval-s', '1', '--stats-window-s', '2'] });
    ({ cp, dir, env, port, deviceId } = lab);
  });
  after(async () => {
    await lab?.stop();
  });

  test('deployed without a reference: the agent serves, its windows are dropped as no_reference', async () => {
    await writeFile(path.join(dir, 'model.onnx'), gemmModel({ seed: 1 }));
    await cli('models', 'push', path.join(dir, 'model.onnx'), '--name', MODEL);
    const built = await cli('bundles', 'build', `${MODEL}@1`, '--def', BUNDLE_DEF);
    assert.equal(built.definition.reference.layout, undefined, 'the bundle ships no layout');
    await cli('cohorts', 'create', 'lab', '--selector', 'site=lab');
    await cli('deploy', `${MODEL}@1`, '--cohort', 'lab');
    await waitFor(async () => (await status()).update?.state === 'active', 'agent active', 60_000);
    await predict();
    await waitFor(async () => (await metric('no_reference')) > 0, 'a window dropped for want of a reference', 20_000);
    const refused = await drift();
    assert.equal(refused.status, 409);
    // Where the user looks: how many windows from how many devices were lost, and both ways to fix it.
    assert.match(refused.body.error.message, /\d+ window\(s\) from 1 device\(s\) were dropped for want of it.*--dataset/);
    const cliRefused = await runCli(['drift', `${MODEL}@1`, '--cohort', 'lab'], env);
    assert.equal(cliRefused.code, 1);
    assert.match(cliRefused.stderr, /dropped for want of it/);
    const tel = await runCli(['telemetry', deviceId, '--window', '1h'], env);
    assert.equal(tel.code, 0, tel.stderr);
    assert.match(tel.stdout, /stats refused\s+\d+ window\(s\) from 1 device\(s\), no_reference/);
    assert.match(tel.stdout, /stats refused \(no_reference\): the version has no reference profile: add one/);
  });

  test('adding the reference re-signs the manifest with its layout; the agent adopts it and drift figures arrive', async () => {
    const before = await status();
    const counter = before.active.counter;
    const refRows = generateRows(5000, 1).map((r) => r.values);
    const ref = await cp.api('POST', `/api/v1/models/${MODEL}/versions/1/reference`, { json: refRows });
    assert.equal(ref.status, 201, JSON.stringify(ref.body));
    assert.equal(ref.body.devicesUpdated, 1, 'the running device gets the layout');
    // Same bundle, next counter: a re-signed manifest, not a deployment.
    await waitFor(async () => (await status()).active?.counter > counter, 'manifest re-signed and adopted', 30_000);
    const now = await status();
    assert.equal(now.active.bundleId, before.active.bundleId);

    await waitFor(
      async () => {
        await predict(100);
        const r = await drift();
        return r.status === 200 && r.body.features.every((f: { n: number }) => f.n >= 100) ? r.body : null;
      },
      'per-feature drift figures from the running device',
      40_000,
    );
    const report = (await drift()).body;
    assert.deepEqual(report.features.map((f: { feature: string }) => f.feature), [...FEATURES]);
    assert.ok(report.features.every((f: { verdict: string }) => f.verdict === 'not_drifted'), JSON.stringify(report.features));
    assert.equal(report.dataset.verdict, 'not_drifted');
    assert.ok(report.rows >= 100);
    const lost = report.dropped.find((d: { reason: string }) => d.reason === 'no_reference');
    assert.ok(lost && lost.windows >= 1 && lost.devices === 1, JSON.stringify(report.dropped));
    const table = await runCli(['drift', `${MODEL}@1`, '--cohort', 'lab'], env);
    assert.match(table.stdout, /^dropped: \d+ window\(s\) \(\d+ rows\) from 1 device\(s\), no_reference, .*add one/m);
  });

  test('replacing the reference with other bins reaches the device the same way', async () => {
    const counter = (await status()).active.counter;
    const ref = await cp.api('POST', `/api/v1/models/${MODEL}/versions/1/reference?bins=10`, { json: generateRows(5000, 2).map((r) => r.values) });
    assert.equal(ref.status, 201, JSON.stringify(ref.body));
    assert.equal(ref.body.devicesUpdated, 1);
    await waitFor(async () => (await status()).active?.counter > counter, 'manifest re-signed again', 30_000);
    const stored = async () => (await cp.api('GET', `/api/v1/drift?model=${MODEL}@1&cohort=lab&window=1h`)).body;
    const mismatchBefore = await metric('edges_mismatch');
    await waitFor(
      async () => {
        await predict(100);
        const r = await stored();
        return r.features?.find((f: { feature: string }) => f.feature === 'f0')?.n >= 100 ? r : null;
      },
      'drift on the replaced reference',
      40_000,
    );
    // Windows still in flight on the old bins may be refused; the new ones are not.
    assert.ok((await metric('edges_mismatch')) - mismatchBefore <= 2);
    assert.match(deviceId, /^dev_/);
  });
});
