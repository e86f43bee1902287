// `flotilla status` on a fleet set up to have one of everything it reports: devices online (real MQTT),
// offline (never connected) and pending; a device whose update failed (its reason and where to look);
// an open drift alert (opened by `flotilla drift evaluate` on sketches a device sent); a running
// retraining job (a command trainer waiting for the test); a running rollout (a long bake); a rollout
// its drift gate paused (the open alert is on its cohort) and one an operator paused, each with why.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../agent/testing/harness.ts';
import { makeTabularRows, tabularToCsv } from '../server/training/synthetic-tabular.ts';
import { cliJson, runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { generateRows, rowsToCsv, sketchOf, statsMessage } from './helpers/device-stats.ts';
import { FakeDevice } from './helpers/fake-device.ts';
import { gemmModel } from './helpers/models.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');
const FACTS = { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' };
/** A relative time the CLI prints for something that happened during this test. */
const RECENT = '(just now|\\d+ s ago|\\d+ min ago)';

describe('flotilla status on a fleet with one of everything', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  let go: string;
  let jobId: string;
  let rollout: string;
  let gatePaused: string;
  let handPaused: string;
  /** How the server names the admin token that paused by hand: `<name> (<token id>)`. */
  let admin: string;
  let alertId: string;
  let broken: FakeDevice;
  const devices: FakeDevice[] = [];
  const ok = async (method: string, p: string, json?: unknown) => {
    const r = await cp.api(method, p, json === undefined ? {} : { json });
    assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const enrollToken = async (site: string, autoApprove = true) => (await ok('POST', '/api/v1/enroll-tokens', { labels: { site }, autoApprove })).token as string;

  before(async () => {
    cp = await startControlPlane({ driftCron: 'off', ingestFlushMs: 40, schedulerTickMs: 100 });
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-status-'));
    go = path.join(dir, 'go');
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    await cliJson(env, 'keys', 'init', '--root-key', path.join(dir, 'root.key'));
    await writeFile(path.join(dir, 'model.onnx'), gemmModel());
    await cliJson(env, 'models', 'push', path.join(dir, 'model.onnx'), '--name', 'tab');
    await writeFile(path.join(dir, 'ref.csv'), rowsToCsv(generateRows(2000, 1)));
    await cliJson(env, 'models', 'reference', 'tab@1', path.join(dir, 'ref.csv'));
    await cliJson(env, 'cohorts', 'create', 'lab', '--selector', 'site=lab');
    await cliJson(env, 'cohorts', 'create', 'field', '--selector', 'site=field');
    const bundle = (await cliJson(env, 'bundles', 'build', 'tab@1', '--def', BUNDLE_DEF)).id as string;

    // lab-1 and field-1 online on MQTT; lab-2 (and spare-1, below) approved but never connected; dock-1 online, its update failed; one pending.
    const lab1 = await FakeDevice.enroll(cp, await enrollToken('lab'), 'lab-1');
    const field1 = await FakeDevice.enroll(cp, await enrollToken('field'), 'field-1');
    devices.push(lab1, field1);
    assert.equal((await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: await enrollToken('lab'), facts: FACTS, name: 'lab-2' } })).status, 201);
    broken = await FakeDevice.enroll(cp, await enrollToken('dock'), 'dock-1');
    devices.push(broken);
    assert.equal((await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: await enrollToken('dock', false), facts: FACTS, name: 'dock-2' } })).status, 201);
    // Two days ago, so its relative time cannot change while the test runs.
    await broken.reportFailure(bundle, 1, { code: 'HASH_MISMATCH', message: 'model.onnx: sha256 does not match\nthe signed manifest', at: new Date(Date.now() - 2 * 86400e3) });

    // A rollout that keeps running: one stage, a bake of an hour (on lab, which has no drift alert to pause it).
    rollout = (await cliJson(env, 'rollouts', 'start', bundle, '--cohort', 'lab', '--stages', '1', '--bake', '1h')).id;
    await waitFor(() => lab1.active === bundle, 'lab-1 runs the rolled-out bundle', 30_000);

    // field-1 runs the bundle and sends sketches with f0 moved by 3σ; `drift evaluate` opens an alert on field.
    await ok('POST', '/api/v1/deployments', { bundle, cohort: 'field' });
    await waitFor(() => field1.active === bundle, 'field-1 runs the deployed bundle', 30_000);
    const layout = (await ok('GET', '/api/v1/models/tab/versions/1/reference')).layout;
    const now = Date.now();
    await field1.publish('stats', statsMessage({ deviceId: field1.id, bundleId: bundle, model: { name: 'tab', version: 1 }, seq: 1, start: new Date(now - 70_000), end: new Date(now - 10_000), sketch: sketchOf(layout, generateRows(500, 9, { feature: 'f0', sigmas: 3 })) }));
    await waitFor(async () => (await ok('GET', '/api/v1/drift?model=tab%401&cohort=field&window=1h')).rows === 500, 'the window is ingested', 20_000);
    const ev = await cliJson(env, 'drift', 'evaluate', '--model', 'tab@1', '--cohort', 'field', '--window', '1h');
    const opened = ev.evaluations.find((e: { transition: string | null }) => e.transition === 'opened');
    assert.ok(opened, `an alert opened: ${JSON.stringify(ev)}`);
    alertId = opened.alert.id;

    // On field the open alert is on the version being rolled out: the drift gate pauses the rollout.
    gatePaused = (await cliJson(env, 'rollouts', 'start', bundle, '--cohort', 'field', '--stages', '1', '--bake', '1h')).id;
    await waitFor(async () => (await ok('GET', `/api/v1/rollouts/${gatePaused}`)).status === 'paused', 'the drift gate pauses the field rollout', 30_000);
    // On spare (one approved device that never connects, so no gate decides) an operator pauses it.
    assert.equal((await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: await enrollToken('spare'), facts: FACTS, name: 'spare-1' } })).status, 201);
    await cliJson(env, 'cohorts', 'create', 'spare', '--selector', 'site=spare');
    handPaused = (await cliJson(env, 'rollouts', 'start', bundle, '--cohort', 'spare', '--stages', '1', '--bake', '1h')).id;
    await cliJson(env, 'rollouts', 'pause', handPaused);
    const me = await cliJson(env, 'whoami');
    admin = `${me.name} (${me.tokenId})`;

    // A retraining job whose trainer waits for the test to let it finish.
    assert.equal((await cp.api('POST', '/api/v1/datasets/train/versions', { body: tabularToCsv(makeTabularRows({ n: 200, seed: 4 })), headers: { 'content-type': 'text/csv' } })).status, 201);
    const trainer = path.join(dir, 'trainer.mjs');
    await writeFile(trainer, `import { copyFileSync, existsSync } from 'node:fs';
      const wait = () => existsSync(${JSON.stringify(go)}) ? copyFileSync(process.env.FLOTILLA_PARENT_MODEL, process.env.FLOTILLA_OUTPUT) : setTimeout(wait, 50);
      wait();`);
    await ok('PUT', '/api/v1/models/tab/retrain-policy', { data: { dataset: 'train' }, trainer: { kind: 'command', argv: [process.execPath, trainer] }, after: { evaluate: false } });
    jobId = (await ok('POST', '/api/v1/models/tab/retrain')).id;
    await waitFor(async () => (await ok('GET', `/api/v1/jobs/${jobId}`)).status === 'running', 'the job runs', 30_000);
  });

  after(async () => {
    if (go) await writeFile(go, '').catch(() => undefined);
    if (jobId) await waitFor(async () => ['succeeded', 'failed'].includes((await ok('GET', `/api/v1/jobs/${jobId}`)).status), 'the job ends', 30_000).catch(() => undefined);
    for (const d of devices) await d.close().catch(() => undefined);
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('one line per part, each naming what is there and the command to look closer', async () => {
    await waitFor(async () => ((await ok('GET', '/api/v1/fleet')).devices as Array<{ online: boolean }>).filter((d) => d.online).length === 3, 'three devices online', 20_000);
    const r = await runCli(['status'], env);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    const expected = [
      'devices   3 online, 2 offline, 1 pending  (approve: flotilla devices ls --status pending)',
      /^updates   0 in flight, 1 failed \(HASH_MISMATCH ×1\)$/,
      `failed    dock-1: HASH_MISMATCH model.onnx: sha256 does not match the signed manifest (2 d ago)  (flotilla devices show ${broken.id})`,
      new RegExp(`^drift     1 open alert\\(s\\): tab@1 on field \\(${RECENT}\\)  \\(flotilla alerts --open\\)$`),
      `rollouts  ${handPaused} tab@1 → spare paused stage 1/1; ${gatePaused} tab@1 → field paused stage 1/1; ${rollout} tab@1 → lab running stage 1/1`,
      `paused    ${handPaused}: paused by ${admin}  (flotilla rollouts show ${handPaused}; resume: flotilla rollouts resume ${handPaused})`,
      `paused    ${gatePaused}: gate failed: drift 1 not = 0 alerts (drift alert ${alertId} (f0) on the new version)  (flotilla rollouts show ${gatePaused}; resume: flotilla rollouts resume ${gatePaused})`,
      new RegExp(`^jobs      ${jobId} tab running \\(${RECENT}\\)$`),
      /^keys      key list v1 expires in (365 d|364 d 23 h)$/,
    ];
    assert.equal(lines.length, expected.length, r.stdout);
    expected.forEach((want, i) => (typeof want === 'string' ? assert.equal(lines[i], want) : assert.match(lines[i], want)));

    const j = JSON.parse((await runCli(['status', '--json'], env)).stdout);
    assert.deepEqual(j.devices, { total: 6, online: 3, offline: 2, pending: 1, revoked: 0 });
    assert.deepEqual(j.updates.latestFailed.map((f: { id: string; name: string; code: string }) => [f.id, f.name, f.code]), [[broken.id, 'dock-1', 'HASH_MISMATCH']]);
    assert.deepEqual(j.alerts.latest.map((a: { id: string }) => a.id), [alertId]);
    assert.deepEqual(
      j.rollouts.map((x: { id: string; status: string; pausedBecause: string | null }) => [x.id, x.status, x.pausedBecause]),
      [
        [handPaused, 'paused', `paused by ${admin}`],
        [gatePaused, 'paused', `gate failed: drift 1 not = 0 alerts (drift alert ${alertId} (f0) on the new version)`],
        [rollout, 'running', null],
      ],
    );
    assert.deepEqual(j.jobs.map((x: { id: string; status: string }) => [x.id, x.status]), [[jobId, 'running']]);
    assert.match(j.jobs[0].createdAt, /^\d{4}-\d\d-\d\dT/, '--json keeps ISO times');
  });
});
