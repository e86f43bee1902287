// The whole continuous-training loop, everything real: a control plane, the CLI and two agent
// processes. Devices serve v1 of the tabular demo model → their inputs drift (a sensor offset on f0)
// → the drift evaluation opens an alert → the policy's drift trigger starts a job → the built-in
// trainer fine-tunes v1 on a dataset of the new distribution → v2 is registered with lineage, its
// reference profile from that dataset, evaluated → a canary rollout gives v2 to one device, then to
// both → drift measured against v2's reference is clean and the alert on v1 is resolved.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AgentProcess, api as agentApi, freePort, waitFor } from '../agent/testing/harness.ts';
import { exportMlpOnnx, trainMlp } from '../server/training/mlp.ts';
import { FEATURES, makeTabularRows, tabularToCsv, type TabularRow } from '../server/training/synthetic-tabular.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');
const MODEL = 'sensor';
/** The drift: f0's sensor reads 3 standard deviations high (the label still follows the true state). */
const SHIFT = { f0: 3 } as const;

const featuresCsv = (rows: TabularRow[]) => [FEATURES.join(','), ...rows.map((r) => FEATURES.map((f) => r[f]).join(','))].join('\n') + '\n';

describe('end to end: drift → retraining job → v2 with lineage → canary rollout → alert resolved', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  const agents: Array<{ proc: AgentProcess; port: number; id: string }> = [];

  const cli = async (...args: string[]) => {
    const r = await runCli(['--json', ...args], env);
    assert.equal(r.code, 0, `flotilla ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const devices = async () => Promise.all(agents.map(async (a) => (await cp.api('GET', `/api/v1/devices/${a.id}`)).body));
  /** Sends rows through every agent's local inference API (what applications on the devices do). */
  const serve = async (rows: TabularRow[]) => {
    for (const a of agents) {
      for (let i = 0; i < rows.length; i += 100) {
        const features = rows.slice(i, i + 100).map((r) => Object.fromEntries(FEATURES.map((f) => [f, r[f]])));
        const res = await agentApi(a.port, 'POST', '/v1/predict', { features });
        assert.equal(res.status, 200, JSON.stringify(res.body));
      }
    }
  };
  const evaluate = async (model: string) => {
    const r = await cp.api('POST', '/api/v1/drift/evaluate', { json: { model, cohort: 'lab', window: '15m' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.evaluations as Array<{ rows: number; driftedFeatures: string[]; transition: string | null; alert: { id: string; status: string } | null }>;
  };

  before(async () => {
    cp = await startControlPlane({ schedulerTickMs: 200, driftCron: 'off', ingestFlushMs: 100 });
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-e2e-ct-'));
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.proc.stop()));
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('the full loop', { timeout: 120_000 }, async () => {
    const started = Date.now();
    // v1: the demo MLP trained on the original distribution; its reference profile; a bundle.
    const original = makeTabularRows({ n: 1200, seed: 101 });
    await writeFile(path.join(dir, 'v1.onnx'), exportMlpOnnx(trainMlp(original, { seed: 1, epochs: 15 })));
    await writeFile(path.join(dir, 'reference-v1.csv'), featuresCsv(original));
    const keys = await cli('keys', 'init', '--root-key', path.join(dir, 'root.key'));
    await cli('models', 'push', path.join(dir, 'v1.onnx'), '--name', MODEL);
    await cli('models', 'reference', `${MODEL}@1`, path.join(dir, 'reference-v1.csv'));
    const bundleV1 = await cli('bundles', 'build', `${MODEL}@1`, '--def', BUNDLE_DEF);
    await cli('cohorts', 'create', 'lab', '--selector', 'site=lab');
    const token = (await cli('enroll-tokens', 'create', '--labels', 'site=lab', '--max-uses', '2')).token;
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const proc = new AgentProcess(
        ['--server', cp.url, '--enroll-token', token, '--data-dir', path.join(dir, `agent-${i}`), '--api-port', String(port), '--trust-root', keys.rootPublicKey,
          '--probation-ms', '200', '--reconnect-min-ms', '100', '--reconnect-max-ms', '1000', '--stats-window-s', '1', '--telemetry-interval-s', '2'],
        { FLOTILLA_AGENT_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG ?? 'warn' },
      ).start();
      agents.push({ proc, port, id: '' });
    }
    for (const a of agents) a.id = await waitFor(async () => (await agentApi(a.port, 'GET', '/v1/status')).body.deviceId as string, 'agent enrolled', 30_000);
    await cli('deploy', bundleV1.id, '--cohort', 'lab');
    await waitFor(async () => (await devices()).every((d) => d.updateState === 'active' && d.reported?.active?.bundleId === bundleV1.id), 'both agents serve v1', 30_000);

    // The policy: drift open ≥ 1 s → fine-tune on the dataset of the new distribution, canary 50 % → 100 %.
    const drifted = makeTabularRows({ n: 3000, seed: 202, shift: SHIFT });
    await writeFile(path.join(dir, 'drifted.csv'), tabularToCsv(drifted));
    await cli('datasets', 'push', path.join(dir, 'drifted.csv'), '--name', 'sensor-recent');
    // Binned Wasserstein between two samples of one distribution measures 0.02–0.1 at these sizes
    // (the reference's own sampling noise), so the default 0.1 would flag noise; f0's drift scores > 1.
    assert.equal((await cp.api('PUT', `/api/v1/models/${MODEL}/drift-config`, { json: { thresholds: { wasserstein: 0.25 } } })).status, 200);
    await writeFile(
      path.join(dir, 'policy.json'),
      JSON.stringify({
        driftOpenForS: 1,
        trainer: { kind: 'builtin', model: 'tabular-demo-mlp', fineTune: true, epochs: 15, seed: 5 },
        data: { dataset: 'sensor-recent' },
        after: { rollout: { strategy: 'canary', stages: [0.5, 1], bakeS: 1, cohort: 'drifted', gates: { maxLatencyRatio: null } } },
        timeoutS: 120,
      }),
    );
    const policy = await cli('retrain', MODEL, '--policy', path.join(dir, 'policy.json'));
    assert.equal(policy.driftOpenForS, 1);

    // Inputs drift on the devices → stats windows → the drift evaluation opens an alert on (lab, v1).
    await serve(makeTabularRows({ n: 300, seed: 303, shift: SHIFT }));
    const opened = await waitFor(
      async () => (await evaluate(`${MODEL}@1`)).find((e) => e.alert?.status === 'open' && e.driftedFeatures.includes('f0')),
      'a drift alert on sensor@1 in lab',
      30_000,
      500,
    );
    const alertId = opened.alert!.id;

    // The drift trigger starts one job; it trains v2 and starts the canary rollout.
    const job = await waitFor(async () => (await cli('jobs', 'ls', '--model', MODEL))[0], 'a drift-triggered job', 15_000, 200);
    assert.deepEqual(job.trigger, { kind: 'drift', alertId, cohort: 'lab' });
    const done = await waitFor(async () => {
      const j = await cli('jobs', 'show', job.id);
      return ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : null;
    }, 'the job to finish', 60_000, 300);
    const logLines = (await cp.api('GET', `/api/v1/jobs/${job.id}/logs`)).body.lines.map((l: { line: string }) => l.line);
    assert.equal(done.status, 'succeeded', `${done.error}\n${logLines.join('\n')}`);
    assert.equal(done.result, `${MODEL}@2`);
    assert.equal(done.parent, `${MODEL}@1`);
    assert.equal(done.dataset, 'sensor-recent@1');
    assert.ok(done.rollout, `a rollout was started:\n${logLines.join('\n')}`);

    const v2 = await cli('models', 'show', `${MODEL}@2`);
    assert.equal(v2.parent, `${MODEL}@1`);
    assert.equal(v2.status, 'ready', v2.statusReason);
    assert.deepEqual(
      { jobId: v2.lineage.jobId, dataset: v2.lineage.datasetVersion, trainer: v2.lineage.trainer.kind, fineTune: v2.lineage.params.fineTune, trigger: v2.lineage.trigger.kind },
      { jobId: job.id, dataset: 'sensor-recent@1', trainer: 'builtin', fineTune: true, trigger: 'drift' },
    );
    assert.ok(v2.lineage.metrics.accuracy > 0.8, `held-out accuracy on the new distribution: ${v2.lineage.metrics.accuracy}`);

    // Canary: first one device of two gets v2 (the first in the cohort's stable order), then both.
    const rollout = await waitFor(
      async () => {
        const r = await cli('rollouts', 'show', done.rollout);
        if (r.status === 'paused' || r.status === 'aborted') assert.fail(`rollout ${r.status}: ${JSON.stringify(r.lastCheck)}`);
        return r.status === 'succeeded' ? r : null;
      },
      'the rollout to finish',
      60_000,
      100,
    );
    const audited = async (action: string) => (await cp.api('GET', `/api/v1/audit?action=${action}&limit=10`)).body.entries.filter((e: { target: string }) => e.target === rollout.id);
    assert.equal((await audited('rollout.create'))[0].details.devices, 1, 'stage 1: one device of two');
    assert.deepEqual((await audited('rollout.advance')).map((e: { details: { stage: number; devices: number } }) => e.details), [{ stage: 1, fraction: 1, devices: 2 }]);
    assert.equal((await audited('rollout.succeeded')).length, 1);
    assert.deepEqual(rollout.devices.map((d: { stage: number }) => d.stage), [0, 1]);
    await waitFor(async () => (await devices()).every((d) => d.updateState === 'active' && d.reported?.active?.model?.version === 2), 'both agents serve v2', 30_000);

    // The same drifted inputs, measured against v2's reference: no drift, and the v1 alert resolves.
    await serve(makeTabularRows({ n: 600, seed: 404, shift: SHIFT }));
    const clean = await waitFor(async () => (await evaluate(`${MODEL}@2`)).find((e) => e.rows >= 1200), 'stats of v2 from both devices', 30_000, 500);
    const report = (await cp.api('GET', `/api/v1/drift?model=${MODEL}@2&cohort=lab&window=15m`)).body;
    assert.deepEqual(clean.driftedFeatures, [], `no feature drifts against v2's reference: ${JSON.stringify(report.features.map((f: Record<string, unknown>) => [f.feature, f.method, f.score, f.threshold, f.n, f.referenceN]))}`);
    const closed = await waitFor(async () => (await cli('alerts')).alerts.find((a: { id: string; status: string }) => a.id === alertId && a.status === 'closed'), 'the alert on v1 closed', 10_000, 200);
    assert.ok(closed.closedAt);
    const actions = new Set((await cp.api('GET', '/api/v1/audit?limit=1000')).body.entries.map((e: { action: string }) => e.action));
    for (const a of ['job.create', 'job.succeeded', 'model.version.create', 'model.reference.set', 'model.version.evaluate', 'bundle.build', 'alert.open', 'alert.close']) assert.ok(actions.has(a), `audited: ${a}`);
    console.log(`full loop in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
});
