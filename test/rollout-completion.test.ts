// When a staged rollout is done (the completion rule, server/rollouts/rollout-gates.ts `stageComplete`):
// on a real control plane with devices over real MQTT, a last stage whose success ratio already passes
// still waits for a device that has not reported the bundle active or failed — with no bake time the
// ratio alone used to report `succeeded` while that device was updating. Past a stage limit the device
// is timed out and counted as a failed update: within maxFailedUpdates the rollout succeeds, beyond it
// the stage fails as onFailure says.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import { DesiredMessage } from '../protocol/messages/desired.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { stableOrder } from '../server/rollouts/stable-order.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

const FACTS = { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' };
const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo', 'bundle.json');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reports each desired bundle active at once, except while `holding`: then it says nothing (an update in progress). */
class Device {
  client!: MqttClient;
  holding = false;
  private last: { bundle: { id: string; name: string; model: { name: string; version: number } }; counter: number } | null = null;
  constructor(readonly id: string, private readonly password: string) {}

  async connect(url: string): Promise<void> {
    this.client = await mqtt.connectAsync(url, { clientId: this.id, username: this.id, password: this.password, reconnectPeriod: 0 });
    this.client.on('message', (_t, payload) => {
      this.last = (DesiredMessage.parse(JSON.parse(payload.toString())).manifest as unknown as { signed: NonNullable<Device['last']> }).signed;
      if (!this.holding) this.report();
    });
    await this.client.subscribeAsync(deviceTopic(this.id, 'desired'), { qos: 1 });
  }

  /** Reports the last desired bundle active (what the held device does once its update ends). */
  report(): void {
    const s = this.last!;
    const at = new Date().toISOString();
    const report = {
      v: 1,
      at,
      agentVersion: '0.1.0',
      state: 'active',
      active: { bundleId: s.bundle.id, bundleName: s.bundle.name, model: s.bundle.model, counter: s.counter, modelSha256: 'x'.repeat(64), activatedAt: at },
      desired: { bundleId: s.bundle.id, counter: s.counter },
      lastError: null,
      transitions: [],
    };
    this.client.publishAsync(deviceTopic(this.id, 'reported'), JSON.stringify(report), { qos: 1, retain: true }).catch(() => {});
  }
}

describe('rollout completion: succeeded only once the last stage is done', () => {
  let cp: TestPlane;
  let dir: string;
  const devices: Device[] = [];
  const bundles: string[] = [];
  const get = async (id: string) => (await cp.api('GET', `/api/v1/rollouts/${id}`)).body;
  const until = async <T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await f();
      if (v !== undefined) return v;
      if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
      await sleep(50);
    }
  };
  const gate = (r: { lastCheck?: { gates?: Array<{ name: string; status: string; value: number | null }> } }, name: string) => r.lastCheck?.gates?.find((g) => g.name === name);
  /** Loose gates so only the completion rule decides: half the stage active passes the ratio; no latency or drift data needed. */
  const start = async (bundle: string, gates: Record<string, unknown>) => {
    const r = await cp.api('POST', '/api/v1/rollouts', { json: { bundle, cohort: 'lab', stages: [0.5, 1], bakeS: 0, gates: { minUpdateSuccessRatio: 0.5, maxLatencyRatio: null, drift: false, ...gates } } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.id as string;
  };

  before(async () => {
    cp = await startControlPlane({ schedulerTickMs: 100 });
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-rollout-completion-'));
    const env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    assert.equal((await runCli(['keys', 'init', '--root-key', path.join(dir, 'root.key')], env)).code, 0);
    const { definition, labels } = await loadBundleDefinition(BUNDLE_DEF);
    for (const v of [1, 2, 3]) {
      assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel({ seed: v }) as unknown as BodyInit })).status, 201);
      const b = await cp.api('POST', '/api/v1/bundles', { json: { model: `tab@${v}`, definition, labels } });
      assert.equal(b.status, 201, JSON.stringify(b.body));
      bundles.push(b.body.id);
    }
    assert.equal((await cp.api('POST', '/api/v1/cohorts', { json: { name: 'lab', selector: 'site=lab' } })).status, 201);
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'lab' } } })).body.token;
    for (let i = 0; i < 4; i++) {
      const r = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const d = new Device(r.body.deviceId, r.body.mqtt.password);
      await d.connect(cp.mqttUrl);
      devices.push(d);
    }
  });
  after(async () => {
    for (const d of devices) d.client.end(true);
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** A device of the last stage only (the first stage is the first half of the stable order), held before the rollout starts. */
  const holdLastStageDevice = () => {
    const id = stableOrder(devices.map((d) => d.id))[3];
    const d = devices.find((x) => x.id === id)!;
    d.holding = true;
    return d;
  };

  test('3 of 4 active passes the ratio, yet the rollout waits for the fourth and succeeds once it is active', async () => {
    const held = holdLastStageDevice();
    const id = await start(bundles[0], {});
    // The last stage measured with 3 of 4 active (ratio 0.75 ≥ 0.5): before the completion rule this tick said succeeded.
    const r = await until('a check of the last stage with 3 devices active', async () => {
      const x = await get(id);
      if (x.status !== 'running') return x;
      return x.lastCheck?.stage === 1 && gate(x, 'updateSuccessRatio')?.value === 0.75 ? x : undefined;
    });
    assert.equal(r.status, 'running', `ended with a device still updating: ${JSON.stringify(r.lastCheck)}`);
    assert.deepEqual({ status: gate(r, 'stageComplete')?.status, value: gate(r, 'stageComplete')?.value }, { status: 'waiting', value: 1 });
    assert.match(r.lastCheck.verdict, /^waiting: stageComplete/);
    // A few more ticks change nothing while it holds.
    await sleep(500);
    assert.equal((await get(id)).status, 'running');
    held.holding = false;
    held.report();
    const done = await until('the rollout to end', async () => ((x) => (x.status !== 'running' ? x : undefined))(await get(id)));
    assert.equal(done.status, 'succeeded', JSON.stringify(done.lastCheck));
    assert.ok(done.devices.every((d: { state: string }) => d.state === 'active'), JSON.stringify(done.devices));
  });

  test('past the stage limit the device still updating is timed out and counted as a failed update: succeeded within maxFailedUpdates', async () => {
    const held = holdLastStageDevice();
    const id = await start(bundles[1], { maxFailedUpdates: 1, stageTimeoutS: 2 });
    const done = await until('the rollout to end', async () => ((x) => (x.status !== 'running' ? x : undefined))(await get(id)));
    held.holding = false;
    assert.equal(done.status, 'succeeded', JSON.stringify(done.lastCheck));
    assert.equal(done.devices.find((d: { id: string }) => d.id === held.id).state, 'timed_out');
    assert.match(done.lastCheck.verdict, new RegExp(`succeeded.*timed out at the stage limit: ${held.id}`));
    assert.equal(gate(done, 'failedUpdates')?.value, 1);
  });

  test('beyond maxFailedUpdates the timed-out device fails the stage (paused, naming it)', async () => {
    const held = holdLastStageDevice();
    const id = await start(bundles[2], { maxFailedUpdates: 0, stageTimeoutS: 2 });
    const done = await until('the rollout to end', async () => ((x) => (x.status !== 'running' ? x : undefined))(await get(id)));
    held.holding = false;
    assert.equal(done.status, 'paused', JSON.stringify(done.lastCheck));
    assert.match(done.lastCheck.verdict, new RegExp(`stage limit of 2 s passed with stageComplete waiting.*timed out: ${held.id} \\(1 failed or timed out, more than maxFailedUpdates 0\\)`));
    assert.equal(done.devices.find((d: { id: string }) => d.id === held.id).state, 'timed_out');
  });
});
