// Opt-in sample capture end to end: a real control plane and a real agent process. Capture is off by
// default (predictions leave nothing on the server); `flotilla settings set --capture on` re-signs the
// device's manifest, the agent adopts it and uploads batches of inputs + outputs, at most at the rate
// the settings allow; turning it off stops it. Uploads for another device are refused, resends deduped.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AgentProcess, api, freePort, waitFor } from '../agent/testing/harness.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');
const row = (i: number) => ({ f0: i, f1: -1, f2: 2, f3: 0.1, f4: 0, f5: 1.5, f6: -0.3, f7: 0.8 });

describe('sample capture: settings → signed manifest → agent uploads', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  let agent: AgentProcess;
  let port: number;
  let deviceId: string;
  let secret: string;

  const cli = async (...args: string[]) => {
    const r = await runCli(['--json', ...args], env);
    assert.equal(r.code, 0, `flotilla ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const samples = async () => (await cp.api('GET', '/api/v1/samples?model=tabular-demo&limit=1000')).body.samples as Array<{ inputs: Record<string, number>; outputs: { predictedClass?: string; confidence?: number }; predictionId: string | null; label: string | null; deviceId: string }>;
  const capture = async () => (await api(port, 'GET', '/v1/status')).body.sampleCapture;
  const predict = async (n: number, from = 0) => {
    for (let i = from; i < from + n; i++) {
      const r = await api(port, 'POST', '/v1/predict', { features: row(i), predictionId: `req-${i}` });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
  };
  const upload = (forId: string, body: unknown) =>
    cp.api('POST', `/api/v1/devices/${forId}/samples`, { token: null, json: body, headers: { authorization: 'Basic ' + Buffer.from(`${deviceId}:${secret}`).toString('base64') } });

  before(async () => {
    cp = await startControlPlane();
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-capture-'));
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    const keys = await cli('keys', 'init', '--root-key', path.join(dir, 'root.key'));
    await writeFile(path.join(dir, 'v1.onnx'), gemmModel({ seed: 1 }));
    await cli('models', 'push', path.join(dir, 'v1.onnx'), '--name', 'tabular-demo');
    await cli('bundles', 'build', 'tabular-demo@1', '--def', BUNDLE_DEF);
    await cli('cohorts', 'create', 'lab', '--selector', 'site=lab');
    const token = (await cli('enroll-tokens', 'create', '--labels', 'site=lab')).token;
    port = await freePort();
    const dataDir = path.join(dir, 'agent');
    agent = new AgentProcess(
      ['--server', cp.url, '--enroll-token', token, '--data-dir', dataDir, '--api-port', String(port), '--trust-root', keys.rootPublicKey, '--probation-ms', '200', '--reconnect-min-ms', '100', '--reconnect-max-ms', '1000'],
      { FLOTILLA_AGENT_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG ?? 'warn' },
    ).start();
    await waitFor(async () => (await api(port, 'GET', '/v1/status').catch(() => null))?.body?.deviceId, 'agent enrolled', 30_000);
    const identity = JSON.parse(await readFile(path.join(dataDir, 'identity.json'), 'utf8'));
    deviceId = identity.deviceId;
    secret = identity.mqtt.password;
    await cli('deploy', 'tabular-demo@1', '--cohort', 'lab');
    await waitFor(async () => (await cp.api('GET', `/api/v1/devices/${deviceId}`)).body.updateState === 'active', 'agent active on v1', 60_000);
  });
  after(async () => {
    await agent?.stop();
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('off by default: predictions leave no samples on the server', async () => {
    assert.equal((await capture()).enabled, false);
    await predict(10);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await capture()).captured, 0);
    assert.equal((await samples()).length, 0);
  });

  test('capture on: batches of inputs + outputs arrive, within the rate cap, labels join by prediction id', async () => {
    const set = await cli('settings', 'set', '--cohort', 'lab', '--capture', 'on', '--capture-rate', '600', '--capture-batch', '5');
    assert.deepEqual(set.resigned, [deviceId]);
    await waitFor(async () => (await capture()).enabled, 'agent adopted the re-signed manifest', 20_000);
    const c = await capture();
    assert.equal(c.maxPerMinute, 600);
    assert.equal(c.batchSize, 5);
    assert.equal((await cp.api('GET', `/api/v1/devices/${deviceId}`)).body.updateState, 'active', 'no reinstall, still active');
    await predict(12, 100);
    const got = await waitFor(async () => ((await samples()).length >= 10 ? samples() : null), '2 full batches uploaded', 20_000);
    assert.ok(got.length <= 12 && got.length <= 600);
    assert.equal((await capture()).queued, got.length === 10 ? 2 : 0, 'the partial batch waits for the flush timer');
    for (const s of got) {
      const i = s.inputs.f0;
      assert.deepEqual(s.inputs, row(i));
      assert.equal(s.predictionId, `req-${i}`);
      assert.ok(['low', 'medium', 'high'].includes(s.outputs.predictedClass!), JSON.stringify(s.outputs));
      assert.ok(s.outputs.confidence! > 0 && s.outputs.confidence! <= 1);
      assert.equal(s.deviceId, deviceId);
    }
    await cp.api('POST', '/api/v1/labels', { json: [{ predictionId: 'req-100', label: 'high' }] });
    assert.equal((await samples()).find((s) => s.predictionId === 'req-100')?.label, 'high');
  });

  test('a device cannot upload for another id; a resent batch is stored once', async () => {
    const batch = {
      v: 1,
      deviceId,
      bundleId: 'b',
      model: { name: 'tabular-demo', version: 1 },
      samples: [{ sampleId: randomUUID(), at: new Date().toISOString(), inputs: row(999), outputs: { predictedClass: 'low' } }],
    };
    const other = await upload('dev_someoneelse', { ...batch, deviceId: 'dev_someoneelse' });
    assert.equal(other.status, 403);
    const first = await upload(deviceId, batch);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.deepEqual((await upload(deviceId, batch)).body, { accepted: 0, duplicates: 1 });
    assert.equal((await samples()).filter((s) => s.inputs.f0 === 999).length, 1);
  });

  test('the agent keeps to the rate: 3 per minute keeps 3 of 10 requests', async () => {
    await cli('settings', 'set', '--cohort', 'lab', '--capture-rate', '3', '--capture-batch', '3');
    await waitFor(async () => (await capture()).maxPerMinute === 3, 'new rate adopted', 20_000);
    const before = await capture();
    await predict(10, 200);
    const after = await capture();
    assert.equal(after.captured - before.captured, 3);
    assert.equal(after.dropped.rate - before.dropped.rate, 7);
    await waitFor(async () => (await samples()).some((s) => s.inputs.f0 >= 200), 'rate-limited samples uploaded', 20_000);
  });

  test('capture off: the agent stops and nothing more arrives', async () => {
    await cli('settings', 'set', '--cohort', 'lab', '--capture', 'off');
    await waitFor(async () => !(await capture()).enabled, 'capture turned off', 20_000);
    const count = (await samples()).length;
    await predict(5, 300);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await samples()).length, count);
  });
});
