// Agent settings and sample uploads, server side: settings are signed into each device's retained
// desired manifest (re-signed with a higher counter on change, device over cohort), and devices upload
// samples only while capture is on, only for the model version they were given, at a capped rate.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { verifyKeyList } from '../firmware-bundles/key-list.ts';
import { verifyManifest } from '../firmware-bundles/manifest.ts';
import { DesiredMessage } from '../protocol/messages/desired.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { snapshotSamples } from '../server/samples/sample-snapshot.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

const FACTS = { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' };
const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');
type Device = { deviceId: string; mqtt: { password: string }; trust: { rootKeyid: string; rootPublicKey: string } };

describe('agent settings and sample uploads', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  let a: Device;
  let b: Device;
  let client: MqttClient;
  const desired: DesiredMessage[] = [];
  let labelled = '';

  const basic = (d: Device) => 'Basic ' + Buffer.from(`${d.deviceId}:${d.mqtt.password}`).toString('base64');
  const upload = (as: Device, forId: string, body: unknown) =>
    cp.api('POST', `/api/v1/devices/${forId}/samples`, { token: null, json: body, headers: { authorization: basic(as) } });
  const batch = (d: Device, n: number, version = 1) => ({
    v: 1,
    deviceId: d.deviceId,
    bundleId: 'ignored-by-the-check',
    model: { name: 'tab', version },
    samples: Array.from({ length: n }, (_, i) => ({
      sampleId: randomUUID(),
      at: new Date().toISOString(),
      predictionId: randomUUID(),
      inputs: { f0: i, f1: 0.5, site: 'lab', ok: true, missing: null },
      outputs: { predictedClass: 'b', confidence: 0.7 },
    })),
  });
  const nextDesired = async (count: number) => {
    for (let i = 0; i < 200 && desired.length < count; i++) await new Promise((r) => setTimeout(r, 25));
    assert.equal(desired.length, count, `expected ${count} desired messages`);
    return desired[count - 1];
  };
  const verified = (msg: DesiredMessage, d: Device, activeCounter: number | null) => {
    const kl = verifyKeyList(msg.keylist, { pinnedRootKeys: [{ keyid: d.trust.rootKeyid, publicKey: d.trust.rootPublicKey }], now: new Date() });
    assert.ok(kl.ok);
    const r = verifyManifest(msg.manifest, { keylist: kl.keylist, deviceId: d.deviceId, activeCounter, agentVersion: '0.1.0', now: new Date() });
    assert.ok(r.ok, !r.ok ? `${r.reason}: ${r.message}` : '');
    return r.manifest;
  };

  before(async () => {
    cp = await startControlPlane();
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-settings-'));
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    assert.equal((await runCli(['keys', 'init', '--root-key', path.join(dir, 'root.key')], env)).code, 0);
    assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel() as BodyInit })).status, 201);
    assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel({ seed: 2 }) as BodyInit })).status, 201);
    const built = await runCli(['bundles', 'build', 'tab@1', '--def', BUNDLE_DEF], env);
    assert.equal(built.code, 0, built.stderr);
    assert.equal((await cp.api('POST', '/api/v1/cohorts', { json: { name: 'lab', selector: 'site=lab' } })).status, 201);
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'lab' } } })).body.token;
    [a, b] = await Promise.all([0, 1].map(async () => (await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } })).body as Device));
    assert.equal((await cp.api('POST', '/api/v1/deployments', { json: { bundle: 'tab@1', cohort: 'lab' } })).status, 201);
    client = await mqtt.connectAsync(cp.mqttUrl, { clientId: a.deviceId, username: a.deviceId, password: a.mqtt.password, reconnectPeriod: 0 });
    client.on('message', (_t, payload) => desired.push(DesiredMessage.parse(JSON.parse(payload.toString()))));
    await client.subscribeAsync(deviceTopic(a.deviceId, 'desired'), { qos: 1 });
  });
  after(async () => {
    client?.end(true);
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('a manifest carries the defaults until settings exist: capture off', async () => {
    const m = verified(await nextDesired(1), a, null);
    assert.equal(m.counter, 1);
    assert.deepEqual(m.agentConfig, { telemetryIntervalS: 10, statsWindowS: 60, sampleCapture: { enabled: false, maxPerMinute: 60, batchSize: 50 } });
    const refused = await upload(a, a.deviceId, batch(a, 1));
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, 'capture_disabled');
  });

  test('cohort settings re-sign the retained manifest: same bundle, higher counter, valid signature', async () => {
    const first = verified(desired[0], a, null);
    const set = await runCli(['--json', 'settings', 'set', '--cohort', 'lab', '--telemetry-interval', '5s', '--stats-window', '1m', '--capture', 'on', '--capture-rate', '600', '--capture-batch', '5'], env);
    assert.equal(set.code, 0, set.stderr);
    assert.deepEqual(JSON.parse(set.stdout).resigned.sort(), [a.deviceId, b.deviceId].sort());
    const m = verified(await nextDesired(2), a, first.counter);
    assert.ok(m.counter > first.counter);
    assert.equal(m.bundle.id, first.bundle.id);
    assert.deepEqual(m.agentConfig, { telemetryIntervalS: 5, statsWindowS: 60, sampleCapture: { enabled: true, maxPerMinute: 600, batchSize: 5 } });
    // A late subscriber (a device that reconnects) gets the same retained manifest.
    const late = await mqtt.connectAsync(cp.mqttUrl, { clientId: a.deviceId, username: a.deviceId, password: a.mqtt.password, reconnectPeriod: 0 });
    const retained = new Promise<DesiredMessage>((resolve) => late.on('message', (_t, p) => resolve(DesiredMessage.parse(JSON.parse(p.toString())))));
    await late.subscribeAsync(deviceTopic(a.deviceId, 'desired'), { qos: 1 });
    assert.equal(verified(await retained, a, first.counter).counter, m.counter);
    late.end(true);
    // The broker kicked the first session (same client id): reconnect the watcher.
    client.end(true);
    client = await mqtt.connectAsync(cp.mqttUrl, { clientId: a.deviceId, username: a.deviceId, password: a.mqtt.password, reconnectPeriod: 0 });
    client.on('message', (_t, payload) => desired.push(DesiredMessage.parse(JSON.parse(payload.toString()))));
    await client.subscribeAsync(deviceTopic(a.deviceId, 'desired'), { qos: 1 });
    await nextDesired(3); // the retained copy again
    // Setting the same values again changes nothing: no new counter.
    const same = await cp.api('PUT', '/api/v1/agent-settings/cohort/lab', { json: { telemetryIntervalS: 5, statsWindowS: 60, sampleCapture: { enabled: true, maxPerMinute: 600, batchSize: 5 } } });
    assert.equal(same.status, 200);
    assert.deepEqual(same.body.resigned, []);
    const audit = await cp.api('GET', '/api/v1/audit?action=settings.put');
    assert.equal(audit.body.entries.length, 2);
  });

  test('a device override wins over its cohort and touches only that device', async () => {
    const before = verified(desired[2], a, null).counter;
    const counterB = (await cp.api('GET', `/api/v1/devices/${b.deviceId}`)).body.desired.counter;
    const set = await runCli(['settings', 'set', '--device', a.deviceId, '--capture', 'off'], env);
    assert.equal(set.code, 0, set.stderr);
    const m = verified(await nextDesired(4), a, before);
    assert.deepEqual(m.agentConfig, { telemetryIntervalS: 5, statsWindowS: 60, sampleCapture: { enabled: false, maxPerMinute: 600, batchSize: 5 } });
    assert.equal((await cp.api('GET', `/api/v1/devices/${b.deviceId}`)).body.desired.counter, counterB);
    const show = await runCli(['--json', 'settings', 'show', '--device', a.deviceId], env);
    assert.equal(show.code, 0, show.stderr);
    assert.deepEqual(JSON.parse(show.stdout).sources, ['defaults', 'cohort:lab', `device:${a.deviceId}`]);
    const table = await runCli(['settings', 'show'], env);
    assert.match(table.stdout, /cohort\s+lab\s+5s\s+60s\s+on, 600\/min, batch 5/);
  });

  test('bad settings are a 400, unknown targets a 404, viewers are refused', async () => {
    for (const body of [{ telemetryIntervalS: 0 }, { statsWindowS: 'x' }, { sampleCapture: { maxPerMinute: 10_000 } }, { color: 'red' }, {}]) {
      const r = await cp.api('PUT', '/api/v1/agent-settings/cohort/lab', { json: body });
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error.code, 'invalid_request');
    }
    assert.equal((await cp.api('PUT', '/api/v1/agent-settings/cohort/nope', { json: { telemetryIntervalS: 5 } })).status, 404);
    assert.equal((await cp.api('PUT', '/api/v1/agent-settings/device/dev_nope1234', { json: { telemetryIntervalS: 5 } })).status, 404);
    assert.equal((await cp.api('PUT', '/api/v1/agent-settings/fleet/x', { json: { telemetryIntervalS: 5 } })).status, 400);
    const cli = await runCli(['settings', 'set', '--cohort', 'nope', '--capture', 'on'], env);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /cohort "nope" not found/);
    assert.equal((await runCli(['settings', 'set', '--cohort', 'lab', '--capture', 'maybe'], env)).code, 2);
    assert.equal((await runCli(['settings', 'set', '--cohort', 'lab'], env)).code, 2);
    const viewer = (await cp.api('POST', '/api/v1/tokens', { json: { name: 'v', role: 'viewer' } })).body.token;
    assert.equal((await cp.api('PUT', '/api/v1/agent-settings/cohort/lab', { token: viewer, json: { telemetryIntervalS: 5 } })).status, 403);
    assert.equal((await cp.api('GET', '/api/v1/agent-settings/cohort/lab', { token: viewer })).status, 200);
    const operator = (await cp.api('POST', '/api/v1/tokens', { json: { name: 'o', role: 'operator' } })).body.token;
    assert.equal((await cp.api('PUT', '/api/v1/agent-settings/cohort/lab', { token: operator, json: { telemetryIntervalS: 5, sampleCapture: { enabled: true, maxPerMinute: 600, batchSize: 5 } } })).status, 200);
  });

  test('uploads: only while capture is on, only the version given, deduped, own id only', async () => {
    assert.equal((await upload(a, a.deviceId, batch(a, 2))).body.error.code, 'capture_disabled'); // device override: off
    const wrongVersion = await upload(b, b.deviceId, batch(b, 2, 2));
    assert.equal(wrongVersion.status, 409);
    assert.match(wrongVersion.body.error.message, /given tab@1/);
    const body = batch(b, 5);
    labelled = body.samples[0].predictionId;
    assert.deepEqual((await upload(b, b.deviceId, body)).body, { accepted: 5, duplicates: 0 });
    assert.deepEqual((await upload(b, b.deviceId, body)).body, { accepted: 0, duplicates: 5 });
    assert.equal((await upload(b, a.deviceId, batch(a, 1))).status, 403);
    assert.equal((await upload(b, b.deviceId, { ...batch(b, 1), deviceId: a.deviceId })).status, 403);
    assert.equal((await cp.api('POST', `/api/v1/devices/${b.deviceId}/samples`, { token: null, json: batch(b, 1) })).status, 401);
    assert.equal((await cp.api('POST', `/api/v1/devices/${b.deviceId}/samples`, { token: null, json: batch(b, 1), headers: { authorization: 'Basic ' + Buffer.from(`${b.deviceId}:wrong`).toString('base64') } })).status, 401);
    for (const bad of [{ ...batch(b, 1), v: 2 }, { ...batch(b, 0) }, { ...batch(b, 1), samples: [{ ...batch(b, 1).samples[0], inputs: { image: 'bm90IGFuIGltYWdl'.repeat(100) } }] }]) {
      const r = await upload(b, b.deviceId, bad);
      assert.equal(r.status, 400, JSON.stringify(r.body));
    }
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(64)]).toString('base64');
    const image = batch(b, 1);
    image.samples[0].inputs = { image: png } as never;
    assert.deepEqual((await upload(b, b.deviceId, image)).body, { accepted: 1, duplicates: 0 });
    const huge = await fetch(`${cp.url}/api/v1/devices/${b.deviceId}/samples`, { method: 'POST', headers: { authorization: basic(b), 'content-type': 'application/json' }, body: 'x'.repeat(9 * 1024 * 1024) });
    assert.equal(huge.status, 413);
  });

  test('the server caps the rate: 429 with Retry-After', async () => {
    await cp.api('PUT', `/api/v1/agent-settings/device/${b.deviceId}`, { json: { sampleCapture: { maxPerMinute: 1, batchSize: 2 } } });
    assert.deepEqual((await upload(b, b.deviceId, batch(b, 2))).body, { accepted: 2, duplicates: 0 });
    const res = await fetch(`${cp.url}/api/v1/devices/${b.deviceId}/samples`, { method: 'POST', headers: { authorization: basic(b), 'content-type': 'application/json' }, body: JSON.stringify(batch(b, 2)) });
    assert.equal(res.status, 429);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'rate_limited');
    assert.ok(Number(res.headers.get('retry-after')) >= 1);
    assert.equal((await upload(b, b.deviceId, batch(b, 3))).status, 400); // bigger than the bucket can ever hold
    await cp.api('DELETE', `/api/v1/agent-settings/device/${b.deviceId}`);
  });

  test('samples read back with labels fed through the ground-truth API; snapshot; retention', async () => {
    const labels = await cp.api('POST', '/api/v1/labels', { json: [{ predictionId: labelled, label: 'c' }] });
    assert.equal(labels.status, 200);
    const list = await cp.api('GET', '/api/v1/samples?model=tab@1&cohort=lab&limit=1000');
    assert.equal(list.status, 200);
    assert.equal(list.body.samples.length, 8);
    assert.ok(list.body.samples.every((s: { deviceId: string; model: string }) => s.deviceId === b.deviceId && s.model === 'tab@1'));
    assert.ok(list.body.samples.some((s: { label: string | null }) => s.label === 'c'));
    assert.deepEqual(list.body.samples.find((s: { label: string | null }) => s.label === 'c').inputs, { f0: 0, f1: 0.5, site: 'lab', ok: true, missing: null });
    assert.equal((await cp.api('GET', '/api/v1/samples?model=tab@2')).body.samples.length, 0);
    assert.equal((await cp.api('GET', '/api/v1/samples?model=nope')).status, 404);
    const operator = (await cp.api('POST', '/api/v1/tokens', { json: { name: 'o2', role: 'operator' } })).body.token;
    assert.equal((await cp.api('GET', '/api/v1/samples?model=tab', { token: operator })).status, 403);
    const cli = await runCli(['samples', 'ls', 'tab', '--cohort', 'lab'], env);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /f0=0,f1=0.5,site=lab/);

    const rows = await snapshotSamples(cp.plane.db, { modelName: 'tab', cohort: 'lab', withLabels: true });
    assert.equal(rows.length, 8);
    assert.equal(rows.filter((r) => r.label === 'c').length, 1);
    assert.ok(rows.every((r, i) => i === 0 || rows[i - 1].at <= r.at));
    assert.equal((await snapshotSamples(cp.plane.db, { modelName: 'tab', withLabels: false })).filter((r) => 'label' in r).length, 0);
    assert.equal((await snapshotSamples(cp.plane.db, { modelName: 'tab', since: new Date(Date.now() + 60_000).toISOString(), withLabels: true })).length, 0);

    const kept = await cp.plane.ingest.cleanup(new Date(Date.now() + 29 * 86_400_000));
    assert.equal(kept.samples, 0);
    const removed = await cp.plane.ingest.cleanup(new Date(Date.now() + 31 * 86_400_000));
    assert.equal(removed.samples, 8);
  });
});
