// Staged rollouts on a real control plane with devices simulated over real MQTT: each device reports
// the bundle of its signed desired state as active (or, if told to, a failed update). Covers the
// stable stage order, advancing after the bake time, late joiners, a failed gate that pauses or
// rolls the stage back, and pause / resume / abort from the CLI; a cohort preferring int8 gets the
// version's int8 child's bundle through every stage, its rollback and its late joiners.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { DesiredMessage } from '../protocol/messages/desired.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { stableOrder } from '../server/rollouts/stable-order.ts';
import { exportMlpOnnx, trainMlp } from '../server/training/mlp.ts';
import { makeTabularRows, tabularToCsv } from '../server/training/synthetic-tabular.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

const FACTS = { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' };
const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A device that applies whatever its desired state names: reports it active, or failed for bundles in `failOn`. */
class FakeDevice {
  client!: MqttClient;
  readonly failOn = new Set<string>();
  /** Bundle ids in the order this device was asked to run them. */
  readonly received: string[] = [];
  active: string | null = null;

  constructor(readonly id: string, private readonly password: string) {}

  async connect(url: string): Promise<void> {
    this.client = await mqtt.connectAsync(url, { clientId: this.id, username: this.id, password: this.password, reconnectPeriod: 0 });
    this.client.on('message', (_t, payload) => {
      const manifest = DesiredMessage.parse(JSON.parse(payload.toString())).manifest as unknown as { signed: { bundle: { id: string; name: string; model: { name: string; version: number } }; counter: number } };
      const { bundle, counter } = manifest.signed;
      this.received.push(bundle.id);
      const at = new Date().toISOString();
      const failed = this.failOn.has(bundle.id);
      if (!failed) this.active = bundle.id;
      const report = {
        v: 1,
        at,
        agentVersion: '0.1.0',
        state: failed ? 'failed' : 'active',
        active: this.active ? { bundleId: this.active, bundleName: bundle.name, model: bundle.model, counter, modelSha256: 'x'.repeat(64), activatedAt: at } : null,
        desired: { bundleId: bundle.id, counter },
        lastError: failed ? { code: 'SMOKE_TEST_FAILED', message: 'smoke vector 0 differs', at, counter } : null,
        transitions: [],
      };
      // A report in flight when the test ends its client rejects ("Connection closed"): nothing to do then.
      this.client.publishAsync(deviceTopic(this.id, 'reported'), JSON.stringify(report), { qos: 1, retain: true }).catch(() => {});
    });
    await this.client.subscribeAsync(deviceTopic(this.id, 'desired'), { qos: 1 });
  }
}

/**
 * CLI, enrollment of fake devices (pushed onto `devices`) and rollout polling for one describe block;
 * a getter because the control plane starts in `before`.
 */
function fleetHelpers(state: () => { cp: TestPlane; env: Record<string, string>; enrollToken: string }, devices: FakeDevice[]) {
  const cli = async (...args: string[]) => {
    const r = await runCli(['--json', ...args], state().env);
    assert.equal(r.code, 0, `flotilla ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const enroll = async () => {
    const { cp, enrollToken } = state();
    const r = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: enrollToken, facts: FACTS } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const d = new FakeDevice(r.body.deviceId, r.body.mqtt.password);
    await d.connect(cp.mqttUrl);
    devices.push(d);
    return d;
  };
  const waitRollout = async (id: string, statuses: string[], timeoutMs = 15_000) => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const r = (await state().cp.api('GET', `/api/v1/rollouts/${id}`)).body;
      if (statuses.includes(r.status)) return r;
      if (Date.now() > until) assert.fail(`rollout ${id} is ${r.status} (${JSON.stringify(r.lastCheck)}), expected ${statuses.join('|')}`);
      await sleep(50);
    }
  };
  return { cli, enroll, waitRollout };
}

describe('staged rollouts', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  let enrollToken: string;
  const devices: FakeDevice[] = [];
  const bundles: string[] = [];

  const { cli, enroll, waitRollout } = fleetHelpers(() => ({ cp, env, enrollToken }), devices);

  before(async () => {
    cp = await startControlPlane({ schedulerTickMs: 100 });
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-rollouts-'));
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    await cli('keys', 'init', '--root-key', path.join(dir, 'root.key'));
    for (let v = 1; v <= 4; v++) {
      assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel({ seed: v }) as unknown as BodyInit })).status, 201);
      bundles.push((await cli('bundles', 'build', `tab@${v}`, '--def', BUNDLE_DEF)).id);
    }
    await cli('cohorts', 'create', 'fleet', '--selector', 'site=lab');
    enrollToken = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'lab' } } })).body.token;
    for (let i = 0; i < 4; i++) await enroll();
    await cli('deploy', bundles[0], '--cohort', 'fleet');
    for (const d of devices) for (let i = 0; i < 100 && d.active !== bundles[0]; i++) await sleep(20);
  });
  after(async () => {
    for (const d of devices) d.client.end(true);
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('stages follow the stable order, advance once the stage is active and baked, and late joiners get the bundle', async () => {
    const order = stableOrder(devices.map((d) => d.id));
    const r = await cli('rollouts', 'start', bundles[1], '--cohort', 'fleet', '--stages', '25%,50%,100%', '--bake', '1s');
    assert.equal(r.stage, 0);
    assert.equal(r.previousBundleId, bundles[0]);
    const show = await cli('rollouts', 'show', r.id);
    assert.deepEqual(show.devices.map((d: { id: string }) => d.id), order);
    assert.deepEqual(show.devices.map((d: { stage: number }) => d.stage), [0, 1, 2, 2]);
    const done = await waitRollout(r.id, ['succeeded', 'paused', 'aborted']);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.lastCheck));
    // Server clocks, not the test's: the CLI calls above take a variable share of the bake time.
    assert.ok(Date.parse(done.updatedAt) - Date.parse(done.createdAt) >= 2000, 'two bake periods passed before the last stage finished');
    // Stage 1 was the first device alone (checked above), then two, then all four.
    assert.ok(devices.every((d) => d.received.includes(bundles[1])));
    const stageOf = (await cp.api('GET', `/api/v1/audit?action=rollout.advance&limit=10`)).body.entries.filter((e: { target: string }) => e.target === r.id).map((e: { details: { devices: number } }) => e.details.devices);
    assert.deepEqual(stageOf.reverse(), [2, 4]);
    // The event stream tells the same story: created, two stage advances, completed.
    const events = (await cp.api('GET', '/api/v1/events/recent?kind=rollout&limit=1000')).body.items.filter((e: { subject: string }) => e.subject === r.id);
    assert.deepEqual(events.map((e: { type: string; data: { stage: number } }) => [e.type, e.data.stage]), [['rollout.created', 0], ['rollout.stage_advanced', 1], ['rollout.stage_advanced', 2], ['rollout.completed', 2]]);
    assert.ok(events.every((e: { data: { rolloutId: string } }) => e.data.rolloutId === r.id));
    // A device joining the cohort now converges on the rolled-out bundle.
    const late = await enroll();
    for (let i = 0; i < 100 && late.active !== bundles[1]; i++) await sleep(20);
    assert.equal(late.active, bundles[1]);
  });

  test('a failed update past the gate rolls the stage back to the previous bundle', async () => {
    const order = stableOrder(devices.map((d) => d.id));
    const first = devices.find((d) => d.id === order[0])!;
    first.failOn.add(bundles[2]);
    const r = (await cp.api('POST', '/api/v1/rollouts', { json: { bundle: bundles[2], cohort: 'fleet', stages: [0.2, 1], bakeS: 0, gates: { maxFailedUpdates: 0, onFailure: 'rollback' } } })).body;
    assert.equal(r.status, 'running', JSON.stringify(r));
    const done = await waitRollout(r.id, ['aborted', 'succeeded', 'paused']);
    assert.equal(done.status, 'aborted');
    assert.match(String(done.lastCheck.verdict), /gate failed: failedUpdates 1 not ≤ 0/);
    for (let i = 0; i < 100 && first.received.at(-1) !== bundles[1]; i++) await sleep(20);
    assert.equal(first.received.at(-1), bundles[1], 'back on the previous bundle');
    for (const d of devices.filter((x) => x !== first)) assert.ok(!d.received.includes(bundles[2]), 'later stages never started');
  });

  test('a failed gate pauses by default; pause, resume and abort from the CLI; one rollout per cohort', async () => {
    const r = await cli('rollouts', 'start', bundles[3], '--cohort', 'fleet', '--stages', '0.5,1', '--bake', '1h');
    const busy = await runCli(['rollouts', 'start', bundles[2], '--cohort', 'fleet'], env);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /already has rollout/);
    assert.equal((await cli('rollouts', 'pause', r.id)).status, 'paused');
    assert.equal((await runCli(['rollouts', 'pause', r.id], env)).code, 1, 'pausing twice is refused');
    assert.equal((await cli('rollouts', 'resume', r.id)).status, 'running');
    await sleep(500);
    assert.equal((await cp.api('GET', `/api/v1/rollouts/${r.id}`)).body.stage, 0, 'baking for an hour: no advance');
    const aborted = await cli('rollouts', 'abort', r.id, '--rollback');
    assert.equal(aborted.status, 'aborted');
    const ls = await runCli(['rollouts', 'ls', '--cohort', 'fleet'], env);
    assert.match(ls.stdout, new RegExp(`${r.id}\\s+tab@4\\s+fleet\\s+aborted`));

    const failing = devices.find((d) => d.id === stableOrder(devices.map((x) => x.id))[0])!;
    failing.failOn.add(bundles[3]);
    const p = (await cp.api('POST', '/api/v1/rollouts', { json: { bundle: bundles[3], cohort: 'fleet', stages: [0.2, 1], bakeS: 0 } })).body;
    const paused = await waitRollout(p.id, ['paused', 'succeeded', 'aborted']);
    assert.equal(paused.status, 'paused');
    assert.match(String(paused.lastCheck.verdict), /gate failed/);
    const bad = await cp.api('POST', '/api/v1/rollouts', { json: { bundle: bundles[3], cohort: 'fleet', stages: [0.5, 1] } });
    assert.equal(bad.status, 409, 'the paused rollout still holds the cohort');
    await cli('rollouts', 'abort', p.id);
    const invalid = await cp.api('POST', '/api/v1/rollouts', { json: { bundle: bundles[3], cohort: 'fleet', stages: [0.5, 0.2] } });
    assert.equal(invalid.status, 400);
    assert.equal((await cp.api('POST', '/api/v1/rollouts', { json: { bundle: bundles[3], cohort: 'nope' } })).status, 404);
  });

  test('deploy --canary starts a staged rollout (listed by `rollouts ls` with its stages); --canary with --device is a usage error', async () => {
    const bad = await runCli(['deploy', bundles[0], '--canary', '10%,100%', '--device', devices[0].id], env);
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    assert.match(bad.stderr, /--canary.*--device/);
    const r = await cli('deploy', bundles[0], '--cohort', 'fleet', '--canary', '10%,50%,100%', '--bake', '1h', '--rollback-on-failure');
    const listed = (await cli('rollouts', 'ls', '--cohort', 'fleet')).find((x: { id: string }) => x.id === r.id);
    assert.ok(listed, 'the rollout is listed');
    assert.deepEqual(listed.stages, [0.1, 0.5, 1]);
    assert.equal(listed.bakeS, 3600);
    assert.equal(listed.gates.onFailure, 'rollback');
    assert.equal((await cli('rollouts', 'abort', r.id)).status, 'aborted');
  });
});

describe('staged rollouts on a cohort preferring a variant', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  let enrollToken: string;
  const devices: FakeDevice[] = [];

  const { cli, enroll, waitRollout } = fleetHelpers(() => ({ cp, env, enrollToken }), devices);
  const modelOf = async (bundleId: string): Promise<string> => (await cp.api('GET', `/api/v1/bundles/${bundleId}`)).body.model;
  const bundleCount = async () => (await cp.api('GET', '/api/v1/bundles')).body.bundles.length;
  const upload = async (seed: number) => {
    const model = exportMlpOnnx(trainMlp(makeTabularRows({ n: 1000, seed: 21 }), { seed, epochs: 20 }));
    assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: model as BodyInit })).status, 201);
  };

  before(async () => {
    cp = await startControlPlane({ schedulerTickMs: 100 });
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-rollouts-variant-'));
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    await upload(1);
    const file = path.join(dir, 'val.csv');
    await writeFile(file, tabularToCsv(makeTabularRows({ n: 300, seed: 22 })));
    await cli('keys', 'init', '--root-key', path.join(dir, 'root.key'));
    await cli('datasets', 'push', file, '--name', 'val');
    await cli('cohorts', 'create', 'small', '--selector', 'mem=small');
    assert.equal((await runCli(['cohorts', 'prefer-variant', 'small', 'int8'], env)).code, 0);
    enrollToken = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { mem: 'small' } } })).body.token;
    for (let i = 0; i < 3; i++) await enroll();
  });
  after(async () => {
    for (const d of devices) d.client.end(true);
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test("a rollout of the parent's bundle gives every stage the int8 child's bundle (built once) and succeeds on it; late joiners get it too", async () => {
    const parent = (await cli('bundles', 'build', 'tab@1', '--def', BUNDLE_DEF)).id;
    const opt = await cli('optimize', 'tab@1', '--quantize', 'int8', '--eval', 'val@1');
    assert.equal(opt.version.status, 'ready');
    const before = await bundleCount();
    const r = await cli('rollouts', 'start', parent, '--cohort', 'small', '--stages', '34%,100%', '--bake', '0s');
    assert.equal(r.bundleId, parent);
    assert.notEqual(r.assignedBundleId, parent, 'the cohort prefers int8: the devices get the child');
    assert.equal(await modelOf(r.assignedBundleId), 'tab@2');
    assert.equal(await bundleCount(), before + 1, 'the int8 bundle is built once, when the rollout is created');
    const done = await waitRollout(r.id, ['succeeded', 'paused', 'aborted']);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.lastCheck));
    for (const d of devices) {
      assert.equal(d.active, r.assignedBundleId);
      assert.ok(!d.received.includes(parent), 'the fp32 parent never shipped');
    }
    assert.equal(await bundleCount(), before + 1);
    // The final cohort deployment records the parent, as direct deployments do; a late joiner gets the variant.
    const dep = (await cp.api('GET', '/api/v1/deployments')).body.deployments.find((x: { id: string }) => x.id === r.id.replace(/^rol_/, 'dep_'));
    assert.equal(dep.bundleId, parent);
    const late = await enroll();
    for (let i = 0; i < 100 && late.active !== r.assignedBundleId; i++) await sleep(20);
    assert.equal(late.active, r.assignedBundleId);
  });

  test("a failed int8 update rolls the stage back to the previous (int8) bundle", async () => {
    const previous = devices[0].active!;
    await upload(2);
    const parent = (await cli('bundles', 'build', 'tab@3', '--def', BUNDLE_DEF)).id;
    const opt = await cli('optimize', 'tab@3', '--quantize', 'int8', '--eval', 'val@1');
    assert.equal(opt.version.status, 'ready');
    // The variant bundle exists already: the rollout reuses it rather than building another.
    const variant = (await cli('bundles', 'build', 'tab@4', '--def', BUNDLE_DEF)).id;
    const first = devices.find((d) => d.id === stableOrder(devices.map((x) => x.id))[0])!;
    first.failOn.add(variant);
    const before = await bundleCount();
    const r = (await cp.api('POST', '/api/v1/rollouts', { json: { bundle: parent, cohort: 'small', stages: [0.25, 1], bakeS: 0, gates: { maxFailedUpdates: 0, onFailure: 'rollback' } } })).body;
    assert.equal(r.assignedBundleId, variant, JSON.stringify(r));
    assert.equal(r.previousBundleId, previous);
    assert.equal(await bundleCount(), before);
    const done = await waitRollout(r.id, ['aborted', 'succeeded', 'paused']);
    assert.equal(done.status, 'aborted');
    assert.match(String(done.lastCheck.verdict), /gate failed: failedUpdates 1 not ≤ 0/);
    for (let i = 0; i < 100 && first.received.at(-1) !== previous; i++) await sleep(20);
    assert.equal(first.received.at(-1), previous, 'back on the previous int8 bundle');
    for (const d of devices.filter((x) => x !== first)) assert.ok(!d.received.includes(variant) && !d.received.includes(parent), 'later stages never started');
  });
});
