// Monitoring end to end on the server: reference profiles, stats and telemetry ingest from real MQTT
// clients logged in as enrolled devices (payloads built with protocol/'s sketch code), bad input
// dropped by reason, drift per cohort, alerts with a signed webhook to a real HTTP server, telemetry
// read-out, ground truth, and the CLI. Devices "run" the model the real way: keys, a bundle built
// from the version, a cohort deployment (the devices' desired state); no agent process is needed
// because ingest checks the desired/reported bundle, not inference.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eq } from 'drizzle-orm';
import mqtt, { type MqttClient } from 'mqtt';
import { createKeyList, signKeyList } from '../firmware-bundles/key-list.ts';
import { generateKeyPair } from '../firmware-bundles/keys.ts';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import type { SketchLayout } from '../protocol/sketch/feature-set-sketch.ts';
import { latencySummary, mergeLatencyHistograms, type LatencyHistogram } from '../protocol/sketch/latency-histogram.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { statsRollups, statsWindows } from '../server/db/schema.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { generateRows, rowsToCsv, sketchOf, statsMessage, telemetryMessage } from './helpers/device-stats.ts';
import { gemmModel } from './helpers/models.ts';

const FACTS = { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' };
const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo', 'bundle.json');
const SECRET = 'webhook-test-secret';
const MINUTE = 60_000;

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2] ? m[2].split(',') : [];
    if (want.every((w) => have.includes(w)) && have.length === want.length) return Number(m[3]);
  }
  return 0;
}

const floorMinute = (t: number) => Math.floor(t / MINUTE) * MINUTE;

describe('monitoring: reference, ingest, drift, alerts, telemetry, ground truth', () => {
  let cp: TestPlane;
  let hook: Server;
  const hooks: Array<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> = [];
  let dir: string;
  let layout: SketchLayout;
  let bundleId: string;
  const devices: Array<{ id: string; password: string; client: MqttClient }> = [];
  let outsider: { id: string; password: string; client: MqttClient };
  const model = { name: 'tab', version: 1 };
  const seqs = new Map<string, number>();
  const nextSeq = (id: string) => {
    const n = (seqs.get(id) ?? 0) + 1;
    seqs.set(id, n);
    return n;
  };
  const metrics = async () => (await fetch(`${cp.url}/metrics`)).text();
  const dropped = async (reason: string, channel = 'stats') => metricValue(await metrics(), 'flotilla_mqtt_messages_dropped_total', { channel, reason });
  const publish = (c: MqttClient, id: string, channel: 'stats' | 'telemetry', payload: unknown) =>
    c.publishAsync(deviceTopic(id, channel), typeof payload === 'string' ? payload : JSON.stringify(payload), { qos: 1 });
  const windowCount = async () => (await cp.plane.db.select().from(statsWindows)).length;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-monitoring-'));
    // The alert receiver: the first delivery attempt fails (503), so the retry path is exercised.
    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const status = hooks.length === 0 ? 503 : 200;
        hooks.push({ status, headers: req.headers, body });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    cp = await startControlPlane({
      driftCron: 'off',
      ingestFlushMs: 40,
      alertWebhookUrl: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`,
      alertWebhookSecret: SECRET,
    });

    assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel() as BodyInit })).status, 201);
    // Signing keys as `flotilla keys init` makes them (root offline, release key on the server).
    const root = generateKeyPair();
    const release = (await cp.api('POST', '/api/v1/keys/release')).body;
    const list = createKeyList({ version: 1, root, keys: [release], threshold: 1, expiresAt: new Date(Date.now() + 86400e3) });
    assert.equal((await cp.api('PUT', '/api/v1/keys/keylist', { json: signKeyList(list, root.privateKeyPem) })).status, 200);
    assert.equal((await cp.api('POST', '/api/v1/cohorts', { json: { name: 'lab', selector: 'site=lab' } })).status, 201);
    assert.equal((await cp.api('POST', '/api/v1/cohorts', { json: { name: 'empty', selector: 'site=nowhere' } })).status, 201);

    const connect = async (labels: Record<string, string>) => {
      const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels } })).body.token;
      const r = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } });
      assert.equal(r.status, 201);
      const client = await mqtt.connectAsync(cp.mqttUrl, { clientId: r.body.deviceId, username: r.body.deviceId, password: r.body.mqtt.password, reconnectPeriod: 0 });
      return { id: r.body.deviceId as string, password: r.body.mqtt.password as string, client };
    };
    for (let i = 0; i < 3; i++) devices.push(await connect({ site: 'lab' }));
    outsider = await connect({ site: 'elsewhere' });
  });

  after(async () => {
    for (const d of [...devices, outsider]) await d?.client.endAsync();
    await cp?.stop();
    await new Promise((r) => hook.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  test('a reference profile from CSV fixes the bin edges, which the bundle ships; the cohort deployment follows', async () => {
    const csv = rowsToCsv(generateRows(5000, 1));
    const res = await cp.api('POST', '/api/v1/models/tab/versions/1/reference', { body: csv, headers: { 'content-type': 'text/csv' } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.rows, 5000);
    assert.deepEqual(res.body.features.map((f: { name: string }) => f.name), ['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7']);
    assert.deepEqual(res.body.layout.outputs, { task: 'classification', numClasses: 3 });
    layout = (await cp.api('GET', '/api/v1/models/tab/versions/1/reference')).body.layout;
    assert.equal(layout.features.f0.kind, 'numeric');
    assert.equal((layout.features.f7 as { edges: number[] }).edges.length, 10, 'a discrete feature gets one bin per value and one per gap between values');

    const { definition, labels } = await loadBundleDefinition(BUNDLE_DEF);
    const built = await cp.api('POST', '/api/v1/bundles', { json: { model: 'tab@1', definition, labels } });
    assert.equal(built.status, 201, JSON.stringify(built.body));
    bundleId = built.body.id;
    for (const f of ['f0', 'f3', 'f7']) assert.deepEqual(built.body.definition.reference.bins[f], (layout.features[f] as { edges: number[] }).edges);
    const dep = await cp.api('POST', '/api/v1/deployments', { json: { bundle: bundleId, cohort: 'lab' } });
    assert.equal(dep.status, 201);
    assert.deepEqual([...dep.body.devices].sort(), devices.map((d) => d.id).sort());

    // Setting the same reference again changes nothing on the devices: the bundle ships that layout.
    // (Other edges would reach them in re-signed manifests: test/e2e-reference-live.test.ts.)
    const again = await cp.api('POST', '/api/v1/models/tab/versions/1/reference', { body: csv, headers: { 'content-type': 'text/csv' } });
    assert.equal(again.status, 201);
    assert.equal(again.body.devicesUpdated, 0);
    assert.deepEqual(again.body.warnings, [], 'a 5,000-row reference is large enough');
  });

  test('JSON rows with outputs and a categorical column; bad datasets are 4xx', async () => {
    assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel({ seed: 3 }) as BodyInit })).status, 201);
    const rows = generateRows(300, 7).map((r, i) => ({ ...r.values, site: i % 3 ? 'a' : 'b', outputs: { predictedClass: r.predictedClass, confidence: r.confidence } }));
    const res = await cp.api('POST', '/api/v1/models/tab/versions/2/reference', { json: { rows, bins: 10, categorical: ['f7'] } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const kinds = Object.fromEntries(res.body.features.map((f: { name: string; kind: string }) => [f.name, f.kind]));
    assert.equal(kinds.site, 'categorical');
    assert.equal(kinds.f7, 'categorical', 'forced categorical');
    assert.equal(kinds.f0, 'numeric');
    assert.ok(res.body.features.find((f: { name: string }) => f.name === 'f0').bins <= 12, '10 quantile bins + under/overflow');
    const full = await cp.api('GET', '/api/v1/models/tab/versions/2/reference?sketch=true');
    assert.equal(full.body.sketch.quality.rows, 300);

    const badCsv = await cp.api('POST', '/api/v1/models/tab/versions/2/reference', { body: 'a,b\n1,"2\n', headers: { 'content-type': 'text/csv' } });
    assert.equal(badCsv.status, 400);
    assert.match(badCsv.body.error.message, /CSV line/);
    const badClass = await cp.api('POST', '/api/v1/models/tab/versions/2/reference', { json: [{ x: 1, outputs: { predictedClass: 'cat' } }] });
    assert.equal(badClass.status, 400);
    const wrongType = await cp.api('POST', '/api/v1/models/tab/versions/2/reference', { body: 'x', headers: { 'content-type': 'text/plain' } });
    assert.equal(wrongType.status, 415);
    const none = await cp.api('POST', '/api/v1/models/tab/versions/9/reference', { json: [{ x: 1 }] });
    assert.equal(none.status, 404);
  });

  test('a drift query for a version without a reference profile is a 409 that says how to add one', async () => {
    assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel({ seed: 4 }) as BodyInit })).status, 201);
    const res = await cp.api('GET', '/api/v1/drift?model=tab@3&cohort=lab');
    assert.equal(res.status, 409);
    assert.match(res.body.error.message, /no reference profile.*flotilla models reference tab@3 <reference.csv\|.jsonl>.*flotilla models reference tab@3 --dataset <name@N>/);
    assert.equal((await cp.api('GET', '/api/v1/drift?model=tab@1&cohort=nope')).status, 404);
    assert.equal((await cp.api('GET', '/api/v1/drift?model=tab@1&window=soon')).status, 400);
  });

  test('ingest stores windows and rollups per cohort and fleet; a resend is counted once', async () => {
    const now = Date.now();
    const sent = [];
    for (const d of devices) {
      const m = statsMessage({ deviceId: d.id, bundleId, model, seq: nextSeq(d.id), start: new Date(now - 70_000), end: new Date(now - 10_000), sketch: sketchOf(layout, generateRows(400, 100 + sent.length)) });
      sent.push(m);
      await publish(d.client, d.id, 'stats', m);
    }
    await until('3 windows', async () => (await windowCount()) === 3);
    // The same window again, as after a reconnect: stored once, counted as a duplicate.
    await publish(devices[0].client, devices[0].id, 'stats', sent[0]);
    await until('duplicate counted', async () => (await dropped('duplicate')) === 1);
    assert.equal(await windowCount(), 3);

    const rollups = await cp.plane.db.select().from(statsRollups).where(eq(statsRollups.granularity, 'minute'));
    const byScope = (scope: string) => rollups.filter((r) => r.scope === scope);
    assert.equal((await cp.plane.db.select().from(statsRollups).where(eq(statsRollups.scope, 'device'))).length, 0, "no per-device rollups: a device's windows are its raw rows");
    assert.equal(byScope('cohort').reduce((s, r) => s + r.windows, 0), 3);
    assert.deepEqual([...new Set(byScope('cohort').map((r) => r.key))], ['lab']);
    assert.equal(byScope('fleet').reduce((s, r) => s + r.rows, 0), 1200);
    assert.equal((await cp.plane.db.select().from(statsRollups).where(eq(statsRollups.granularity, 'hour'))).filter((r) => r.scope === 'cohort').reduce((s, r) => s + r.windows, 0), 3);

    const drift = await cp.api('GET', '/api/v1/drift?model=tab@1&cohort=lab&window=15m');
    assert.equal(drift.status, 200, JSON.stringify(drift.body));
    assert.equal(drift.body.windows, 3);
    assert.equal(drift.body.rows, 1200);
    assert.equal(drift.body.referenceRows, 5000);
    assert.equal(drift.body.features.length, 8);
    assert.ok(drift.body.features.every((f: { method: string }) => f.method === 'wasserstein'), 'a 5,000-row reference gets normed Wasserstein');
    assert.deepEqual(drift.body.features.filter((f: { drifted: boolean }) => f.drifted), [], 'no drift in unshifted data');
    assert.deepEqual(drift.body.outputs.map((o: { feature: string }) => o.feature), ['predictedClass', 'confidence']);
    assert.equal(drift.body.dataset.verdict, 'not_drifted');
    // The whole fleet (no cohort) sees the same windows.
    assert.equal((await cp.api('GET', '/api/v1/drift?model=tab@1&window=15m')).body.rows, 1200);
  });

  test('bad stats are dropped, counted by reason, and leave the rollups untouched', async () => {
    const before = JSON.stringify(await cp.plane.db.select().from(statsRollups).orderBy(statsRollups.scope, statsRollups.key, statsRollups.granularity));
    const windowsBefore = await windowCount();
    const [d] = devices;
    const now = Date.now();
    const good = () => statsMessage({ deviceId: d.id, bundleId, model, seq: nextSeq(d.id), start: new Date(now - 60_000), end: new Date(now - 1000), sketch: sketchOf(layout, generateRows(200, now % 1000)) });

    await publish(d.client, d.id, 'stats', { ...good(), v: 2 });
    const negative = good();
    negative.sketch.features.f2.nulls = -1;
    await publish(d.client, d.id, 'stats', negative);
    const moreBins = good();
    (moreBins.sketch.features.f0 as { bins: number[]; sums: number[] }).bins.push(0);
    await publish(d.client, d.id, 'stats', moreBins);
    // Sketched on other edges than the reference's (structurally valid, so only the reference check catches it).
    const otherLayout = structuredClone(layout);
    (otherLayout.features.f1 as { edges: number[] }).edges = [0, 2, 4, 6, 8, 10];
    await publish(d.client, d.id, 'stats', { ...good(), sketch: sketchOf(otherLayout, generateRows(200, 5)) });
    await publish(d.client, d.id, 'stats', { ...good(), windowStart: new Date(now + 3600e3).toISOString(), windowEnd: new Date(now + 3660e3).toISOString() });
    // A device outside the cohort that runs nothing, and a device naming a model version it was not given.
    await publish(outsider.client, outsider.id, 'stats', { ...good(), deviceId: outsider.id });
    await publish(d.client, d.id, 'stats', { ...good(), model: { name: 'tab', version: 2 } });
    await publish(d.client, d.id, 'stats', { ...good(), deviceId: devices[1].id });
    await publish(d.client, d.id, 'stats', '{"v":1,');
    // Older than the raw-window retention (72 h): a resend could no longer be recognised, so it is refused.
    await publish(d.client, d.id, 'stats', { ...good(), windowStart: new Date(now - 80 * 3600e3).toISOString(), windowEnd: new Date(now - 80 * 3600e3 + 60e3).toISOString() });

    const expected = { expired: 1, schema_version: 1, negative_count: 1, bins_mismatch: 1, edges_mismatch: 1, future_window: 1, not_assigned: 2, device_mismatch: 1, malformed_json: 1 };
    await until('every refusal counted', async () => {
      const text = await metrics();
      return Object.entries(expected).every(([reason, n]) => metricValue(text, 'flotilla_mqtt_messages_dropped_total', { channel: 'stats', reason }) === n);
    });
    await new Promise((r) => setTimeout(r, 150)); // one more flush interval: nothing else may land
    assert.equal(await windowCount(), windowsBefore);
    assert.equal(JSON.stringify(await cp.plane.db.select().from(statsRollups).orderBy(statsRollups.scope, statsRollups.key, statsRollups.granularity)), before);
  });

  test('a shifted feature is reported drifted (only that one); an alert opens, the webhook gets it signed; normal data closes it', async () => {
    const t0 = floorMinute(Date.now()) - 30 * MINUTE;
    const t1 = t0 + 10 * MINUTE;
    // Fixed seeds: unshifted windows still drift by chance now and then (normed W1 ≥ 0.1 for about
    // 0.3 % of features at these sizes, see protocol/DRIFT.md), and a test must not depend on the clock.
    const sendWindows = async (start: number, seed: number, shift?: { feature: string; sigmas: number }) => {
      const before = await windowCount();
      for (const [i, d] of devices.entries()) {
        const rows = generateRows(400, seed + i, shift);
        await publish(d.client, d.id, 'stats', statsMessage({ deviceId: d.id, bundleId, model, seq: nextSeq(d.id), start: new Date(start + 1000), end: new Date(start + 59_000), sketch: sketchOf(layout, rows) }));
      }
      await until('windows stored', async () => (await windowCount()) === before + devices.length);
    };
    await sendWindows(t0, 1000, { feature: 'f3', sigmas: 0.5 });
    const end0 = new Date(t0 + MINUTE).toISOString();
    const drift = await cp.api('GET', `/api/v1/drift?model=tab@1&cohort=lab&window=1m&end=${end0}`);
    assert.equal(drift.status, 200);
    assert.equal(drift.body.rows, 1200);
    const drifted = drift.body.features.filter((f: { drifted: boolean }) => f.drifted);
    assert.deepEqual(drifted.map((f: { feature: string }) => f.feature), ['f3']);
    assert.ok(drifted[0].score > 0.4 && drifted[0].score < 0.6, `normed W1 of a 0.5σ shift ≈ 0.5, got ${drifted[0].score}`);
    assert.equal(drifted[0].threshold, 0.1);
    assert.ok(drift.body.outputs.every((o: { drifted: boolean }) => !o.drifted));
    assert.equal(drift.body.dataset.driftedCount, 1);
    assert.equal(drift.body.dataset.verdict, 'not_drifted', '1 of 8 features is below the 50 % dataset threshold');

    const opened = await cp.api('POST', '/api/v1/drift/evaluate', { json: { model: 'tab@1', cohort: 'lab', window: '1m', end: end0 } });
    assert.equal(opened.status, 200, JSON.stringify(opened.body));
    assert.equal(opened.body.evaluations.length, 1);
    assert.equal(opened.body.evaluations[0].transition, 'opened');
    assert.deepEqual(opened.body.evaluations[0].driftedFeatures, ['f3']);
    // Evaluating again keeps the one open alert.
    const again = await cp.api('POST', '/api/v1/drift/evaluate', { json: { model: 'tab@1', cohort: 'lab', window: '1m', end: end0 } });
    assert.equal(again.body.evaluations[0].transition, null);
    const open = (await cp.api('GET', '/api/v1/alerts?status=open')).body.alerts;
    assert.equal(open.length, 1);
    assert.equal(open[0].feature, 'f3');
    assert.equal(open[0].model, 'tab@1');
    assert.equal(open[0].cohort, 'lab');
    assert.equal(open[0].window.end, end0);
    const m = await metrics();
    assert.equal(metricValue(m, 'flotilla_drifted_features', { cohort: 'lab', model: 'tab@1' }), 1);
    assert.equal(metricValue(m, 'flotilla_alerts_open'), 1);

    const delivered = async (event: string) => hooks.find((h) => h.status === 200 && h.headers['x-flotilla-event'] === event);
    const first = await until('webhook alert.opened', () => delivered('alert.opened'));
    assert.equal(first.headers['x-flotilla-signature'], 'sha256=' + createHmac('sha256', SECRET).update(first.body).digest('hex'));
    const body = JSON.parse(first.body);
    assert.equal(body.alert.id, open[0].id);
    assert.equal(body.alert.features[0].feature, 'f3');
    const attempts = hooks.filter((h) => h.headers['x-flotilla-delivery'] === first.headers['x-flotilla-delivery']);
    assert.deepEqual(attempts.map((h) => h.status), [503, 200], 'retried after a 503, same delivery id');

    await sendWindows(t1, 2000);
    const end1 = new Date(t1 + MINUTE).toISOString();
    const clean = await cp.api('GET', `/api/v1/drift?model=tab@1&cohort=lab&window=1m&end=${end1}`);
    assert.deepEqual(clean.body.features.filter((f: { drifted: boolean }) => f.drifted), []);
    const closed = await cp.api('POST', '/api/v1/drift/evaluate', { json: { window: '1m', end: end1 } });
    assert.equal(closed.body.evaluations.find((e: { cohort: string }) => e.cohort === 'lab').transition, 'closed');
    assert.equal((await cp.api('GET', '/api/v1/alerts?status=open')).body.alerts.length, 0);
    const all = (await cp.api('GET', '/api/v1/alerts')).body.alerts;
    assert.equal(all[0].status, 'closed');
    assert.ok(all[0].closedAt);
    const closedHook = await until('webhook alert.closed', () => delivered('alert.closed'));
    assert.equal(closedHook.headers['x-flotilla-signature'], 'sha256=' + createHmac('sha256', SECRET).update(closedHook.body).digest('hex'));
    assert.equal(metricValue(await metrics(), 'flotilla_drifted_features', { cohort: 'lab', model: 'tab@1' }), 0);
    // The event log.
    const audit = (await cp.api('GET', '/api/v1/audit?limit=20')).body.entries.map((e: { action: string }) => e.action);
    assert.ok(audit.includes('alert.open') && audit.includes('alert.close'));
    // The event stream's record of the same alert.
    const alertEvents = (await cp.api('GET', '/api/v1/events/recent?kind=alert')).body.items.filter((e: { subject: string }) => e.subject === open[0].id);
    assert.deepEqual(alertEvents.map((e: { type: string }) => e.type), ['alert.opened', 'alert.closed']);
    assert.deepEqual(alertEvents[0].data, { alertId: open[0].id, cohort: 'lab', model: 'tab', version: 1 });
  });

  test('drift settings per model: validated against the reference, applied to the next query', async () => {
    const bad = await cp.api('PUT', '/api/v1/models/tab/drift-config', { json: { features: { site: { method: 'ks' } } } });
    assert.equal(bad.status, 400, 'KS does not apply to the categorical feature of tab@2');
    const t0 = floorMinute(Date.now()) - 30 * MINUTE;
    const q = `/api/v1/drift?model=tab@1&cohort=lab&window=1m&end=${new Date(t0 + MINUTE).toISOString()}`;
    const set = await cp.api('PUT', '/api/v1/models/tab/drift-config', { json: { features: { f3: { threshold: 0.8 } }, minSamples: 50 } });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    const f3 = (await cp.api('GET', q)).body.features.find((f: { feature: string }) => f.feature === 'f3');
    assert.equal(f3.threshold, 0.8);
    assert.equal(f3.drifted, false);
    const min = await cp.api('PUT', '/api/v1/models/tab/drift-config', { json: { minSamples: 5000 } });
    assert.equal(min.body.config.minSamples, 5000);
    const r = (await cp.api('GET', q)).body;
    assert.ok(r.features.every((f: { verdict: string }) => f.verdict === 'insufficient_data'), 'below minSamples: no verdict');
    assert.equal(r.dataset.verdict, 'insufficient_data');
    await cp.api('PUT', '/api/v1/models/tab/drift-config', { json: {} });
    assert.equal((await cp.api('GET', '/api/v1/models/tab/drift-config')).body.config.minSamples, 100);
  });

  test('telemetry: rate, errors, latency quantiles and resources match what the devices sent', async () => {
    const now = Date.now();
    const [a, b] = devices;
    const reports = [
      // seq 1 is from an older agent (no `monitoring`); the others report the data the device lost.
      telemetryMessage({ deviceId: a.id, seq: 1, at: new Date(now - 25_000), inferences: 100, errors: { timeout: 1 }, cpu: 0.1, uptimeS: 100 }),
      telemetryMessage({ deviceId: a.id, seq: 2, at: new Date(now - 15_000), inferences: 200, activeS: 2.5, cpu: 0.2, uptimeS: 110, monitoring: { outboxPending: 40, outboxPendingBytes: 40_000, outboxDropped: 5, outboxCorrupt: 1, statsDropped: 7 } }),
      telemetryMessage({ deviceId: a.id, seq: 3, at: new Date(now - 5000), inferences: 300, errors: { preprocess: 2, timeout: 1 }, activeS: 5, cpu: 0.3, rssBytes: 91e6, diskFreeBytes: 4e9, uptimeS: 120, activeBundle: { id: bundleId, counter: 1 }, monitoring: { outboxPending: 12, outboxPendingBytes: 9000, outboxDropped: 3, outboxCorrupt: 0, statsDropped: 0 } }),
      // Sent late (store and forward): counts, but must not replace the newer resources.
      telemetryMessage({ deviceId: a.id, seq: 0, at: new Date(now - 35_000), inferences: 50, activeS: 2.5, cpu: 0.9, uptimeS: 90, monitoring: { outboxPending: 99, outboxPendingBytes: 1, outboxDropped: 0, outboxCorrupt: 0, statsDropped: 2 } }),
    ];
    for (const r of reports) await publish(a.client, a.id, 'telemetry', r);
    await publish(a.client, a.id, 'telemetry', reports[1]); // resend
    const fromB = telemetryMessage({ deviceId: b.id, seq: 1, at: new Date(now - 10_000), inferences: 40, activeS: 2, cpu: 0.5, monitoring: { outboxPending: 1, outboxPendingBytes: 500, outboxDropped: 10, outboxCorrupt: 0, statsDropped: 0 } });
    await publish(b.client, b.id, 'telemetry', fromB);
    await publish(b.client, b.id, 'telemetry', { ...fromB, seq: 2, inferences: -1 });
    await until('telemetry stored', async () => metricValue(await metrics(), 'flotilla_ingest_stored_total', { channel: 'telemetry' }) === 5);
    await until('resend and bad report counted', async () => (await dropped('duplicate', 'telemetry')) === 1 && (await dropped('negative_count', 'telemetry')) === 1);

    const dev = await cp.api('GET', `/api/v1/telemetry?device=${a.id}&window=15m`);
    assert.equal(dev.status, 200, JSON.stringify(dev.body));
    assert.equal(dev.body.reports, 4);
    assert.equal(dev.body.inferences, 650);
    assert.deepEqual(dev.body.errors, { timeout: 2, preprocess: 2 });
    assert.equal(dev.body.errorCount, 4);
    assert.equal(dev.body.span.seconds, 40); // from (now − 35 s) − 10 s to now − 5 s
    assert.ok(Math.abs(dev.body.ratePerSecond - 650 / 40) < 1e-9, String(dev.body.ratePerSecond));
    // Rate while serving: seq 1 is from an agent without `activeS` (its whole 10 s interval had requests), the others
    // served 2.5 + 5 + 2.5 s: 650 inferences in 20 s of serving.
    assert.equal(dev.body.activeSeconds, 20);
    assert.equal(dev.body.activeRatePerSecond, 32.5);
    assert.ok(Math.abs(dev.body.errorRatio - 4 / 654) < 1e-12, String(dev.body.errorRatio));
    const merged = reports.map((r) => r.latency).reduce((x: LatencyHistogram, y) => mergeLatencyHistograms(x, y));
    const want = latencySummary(merged);
    for (const k of ['count', 'p50', 'p95', 'p99'] as const) assert.equal(dev.body.latency[k], want[k], k);
    assert.ok(Math.abs(dev.body.latency.meanMs - want.meanMs!) < 1e-9, `${dev.body.latency.meanMs} vs ${want.meanMs}`);
    assert.equal(dev.body.resources.devices.length, 1);
    assert.deepEqual(dev.body.resources.devices[0], { deviceId: a.id, at: new Date(now - 5000).toISOString(), seq: 3, cpu: 0.3, rssBytes: 91e6, diskFreeBytes: 4e9, uptimeS: 120, queueDepth: 0, activeBundle: { id: bundleId, counter: 1 }, outboxPending: 12, outboxPendingBytes: 9000 });
    // Monitoring data lost: summed over the window apart from the request errors; the backlog is the newest report's.
    const { refusedStats, ...devMonitoring } = dev.body.monitoring;
    assert.deepEqual(devMonitoring, { lost: { outboxDropped: 8, outboxCorrupt: 1, statsDropped: 9 }, pending: { messages: 12, bytes: 9000, devices: 1 } });
    assert.ok(Array.isArray(refusedStats), 'stats refused by the server are listed apart (test/e2e-reference-live.test.ts)');
    assert.deepEqual(dev.body.monitoringLost, dev.body.monitoring.lost);

    const coh = await cp.api('GET', '/api/v1/telemetry?cohort=lab');
    assert.equal(coh.body.inferences, 690);
    assert.ok(Math.abs(coh.body.ratePerSecond - 690 / 40) < 1e-9, String(coh.body.ratePerSecond));
    assert.equal(coh.body.activeSeconds, 22, 'device-seconds of serving of both devices');
    assert.ok(Math.abs(coh.body.activeRatePerSecond - 690 / 22) < 1e-9, String(coh.body.activeRatePerSecond));
    assert.deepEqual(coh.body.resources.devices.map((d: { deviceId: string }) => d.deviceId), [a.id, b.id].sort());
    assert.equal(coh.body.resources.cpuMax, 0.5);
    assert.equal(coh.body.resources.rssMaxBytes, 91e6);
    assert.deepEqual({ ...coh.body.monitoring, refusedStats: undefined }, { lost: { outboxDropped: 18, outboxCorrupt: 1, statsDropped: 9 }, pending: { messages: 13, bytes: 9500, devices: 2 }, refusedStats: undefined });
    const text = await metrics();
    assert.equal(metricValue(text, 'flotilla_fleet_monitoring_lost', { kind: 'outbox_dropped' }), 18);
    assert.equal(metricValue(text, 'flotilla_fleet_monitoring_lost', { kind: 'outbox_corrupt' }), 1);
    assert.equal(metricValue(text, 'flotilla_fleet_monitoring_lost', { kind: 'stats_dropped' }), 9);
    assert.equal(metricValue(text, 'flotilla_fleet_outbox_pending_messages'), 13);
    assert.ok(Math.abs(metricValue(text, 'flotilla_fleet_inferences_per_second') - 690 / 40) < 1e-9, text.split('\n').filter((l) => l.startsWith('flotilla_fleet')).join('; '));
    assert.ok(Math.abs(metricValue(text, 'flotilla_fleet_error_ratio') - 4 / 694) < 1e-12, String(metricValue(text, 'flotilla_fleet_error_ratio')));
    assert.equal(metricValue(text, 'flotilla_devices_online'), 4);
    assert.ok(!/flotilla_[a-z_]+\{[^}]*dev_/.test(text), 'no per-device series');
    assert.equal((await cp.api('GET', '/api/v1/telemetry?device=dev_nothere00')).status, 404);
    assert.equal((await cp.api('GET', `/api/v1/telemetry?device=${a.id}&cohort=lab`)).status, 400);
  });

  test('ground truth: predictions from a device and an external system, labels (even early) → accuracy per bucket', async () => {
    const end = new Date(floorMinute(Date.now()));
    const at = (minutesAgo: number) => new Date(end.getTime() - minutesAgo * MINUTE).toISOString();
    const [a, b] = devices;
    const basic = (d: { id: string; password: string }) => ({ authorization: 'Basic ' + Buffer.from(`${d.id}:${d.password}`).toString('base64') });
    // A label can arrive before its prediction.
    assert.deepEqual((await cp.api('POST', '/api/v1/labels', { json: [{ predictionId: 'p9', label: 1 }] })).body, { stored: 1, matched: 0 });
    const fromDevice = [0, 1, 2, 1].map((predicted, i) => ({ predictionId: `p${i + 1}`, model: 'tab@1', predicted, at: at(45) }));
    const dev = await cp.api('POST', '/api/v1/predictions', { token: null, headers: basic(a), json: fromDevice });
    assert.equal(dev.status, 200, JSON.stringify(dev.body));
    assert.equal(dev.body.accepted, 4);
    const spoof = await cp.api('POST', '/api/v1/predictions', { token: null, headers: basic(a), json: [{ predictionId: 'x', deviceId: b.id, model: 'tab@1', predicted: 0, at: at(1) }] });
    assert.equal(spoof.status, 403);
    assert.equal((await cp.api('POST', '/api/v1/predictions', { token: null, headers: basic({ id: a.id, password: 'wrong' }), json: fromDevice })).status, 401);
    assert.equal((await cp.api('POST', '/api/v1/predictions', { token: null, json: fromDevice })).status, 401);
    const external = [2, 2, 0, 1, 1].map((predicted, i) => ({ predictionId: `p${i + 5}`, deviceId: b.id, model: 'tab@1', predicted, at: at(15) }));
    const ext = await cp.api('POST', '/api/v1/predictions', { json: [...external, { predictionId: 'p1', model: 'tab@1', predicted: 0, at: at(45) }, { predictionId: 'q', deviceId: 'dev_nothere00', model: 'tab@1', predicted: 0, at: at(1) }] });
    assert.deepEqual(ext.body, { accepted: 5, duplicates: 1, rejected: [{ predictionId: 'q', reason: 'unknown_device' }] });
    const labels = [
      ['p1', 0], ['p2', 1], ['p3', 1], ['p4', 1], // 3 of 4 right
      ['p5', 2], ['p6', 0], ['p7', 0], // p8 unlabeled, p9 labeled early: 3 of 4 right
    ].map(([predictionId, label]) => ({ predictionId: String(predictionId), label }));
    assert.deepEqual((await cp.api('POST', '/api/v1/labels', { json: labels })).body, { stored: 7, matched: 7 });

    const perf = await cp.api('GET', `/api/v1/performance?model=tab@1&window=1h&bucket=30m&end=${end.toISOString()}`);
    assert.equal(perf.status, 200, JSON.stringify(perf.body));
    assert.deepEqual(
      perf.body.buckets.map((x: { predictions: number; labeled: number; correct: number; accuracy: number }) => [x.predictions, x.labeled, x.correct, x.accuracy]),
      [
        [4, 4, 3, 0.75],
        [5, 4, 3, 0.75],
      ],
    );
    assert.equal(perf.body.accuracy, 0.75);
    assert.equal((await cp.api('GET', `/api/v1/performance?model=tab@1&cohort=lab&window=1h&bucket=30m&end=${end.toISOString()}`)).body.labeled, 8);
    assert.equal((await cp.api('GET', `/api/v1/performance?model=tab@1&cohort=empty&window=1h&end=${end.toISOString()}`)).body.predictions, 0);
    // A corrected label replaces the first one.
    await cp.api('POST', '/api/v1/labels', { json: [{ predictionId: 'p3', label: 2 }] });
    assert.equal((await cp.api('GET', `/api/v1/performance?model=tab@1&window=1h&bucket=30m&end=${end.toISOString()}`)).body.correct, 7);
  });

  test('CLI: drift table, telemetry, alerts, models reference (tables and --json)', async () => {
    const env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    const table = await runCli(['drift', 'tab@1', '--cohort', 'lab', '--window', '2h'], env);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /FEATURE\s+METHOD\s+SCORE\s+THRESHOLD\s+DRIFTED/);
    assert.match(table.stdout, /f3\s+wasserstein/);
    assert.match(table.stdout, /dataset: (drifted|not drifted)/);
    const asJson = await runCli(['--json', 'drift', 'tab@1', '--cohort', 'lab', '--window', '2h'], env);
    assert.equal(JSON.parse(asJson.stdout).features.length, 8);

    const tel = await runCli(['telemetry', devices[0].id], env);
    assert.equal(tel.code, 0, tel.stderr);
    assert.match(tel.stdout, /p95/);
    assert.match(tel.stdout, /inferences\s+650/);
    // The rate says what it is an average over: 650 inferences over the 40 s span of the reports.
    assert.match(tel.stdout, /rate\s+16\.25\/s \(650 inferences averaged over the 40 s the reports cover/);
    assert.match(tel.stdout, /rate while serving\s+32\.5\/s \(over the 20 s the device was serving: seconds with at least one request\)/);
    assert.match(tel.stdout, /monitoring data lost\s+outbox dropped=8, outbox corrupt=1, stats dropped=9/);
    assert.match(tel.stdout, /outbox pending\s+12 messages/);
    // Tables show relative times; --json keeps the ISO ones.
    assert.match(tel.stdout, /^window\s+15m \(from 15 min ago to just now\)$/m);
    assert.match(tel.stdout, new RegExp(`^${devices[0].id}\\s.*\\S.* ago$`, 'm'));
    assert.doesNotMatch(tel.stdout, /\d{4}-\d\d-\d\dT/);
    const telJson = JSON.parse((await runCli(['--json', 'telemetry', 'lab'], env)).stdout);
    assert.equal(telJson.inferences, 690);
    assert.deepEqual(telJson.monitoring.lost, { outboxDropped: 18, outboxCorrupt: 1, statsDropped: 9 });
    assert.equal(telJson.monitoring.pending.messages, 13);

    const alerts = await runCli(['--json', 'alerts', '--open'], env);
    assert.deepEqual(JSON.parse(alerts.stdout).alerts, []);
    assert.match((await runCli(['alerts'], env)).stdout, /closed/);

    const file = path.join(dir, 'ref.jsonl');
    await writeFile(file, generateRows(200, 9).map((r) => JSON.stringify({ ...r.values, outputs: { predictedClass: r.predictedClass, confidence: r.confidence } })).join('\n'));
    const ref = await runCli(['models', 'reference', 'tab@3', file], env);
    assert.equal(ref.code, 0, ref.stderr);
    assert.match(ref.stdout, /200 rows/);
    // Said at upload, not after the alerts: 200 rows is below what a stable evaluation needs.
    assert.match(ref.stdout, /warning: reference has 200 rows; below 5,000/);
    assert.equal((await cp.api('GET', '/api/v1/models/tab/versions/3/reference')).body.rows, 200);
    const missing = await runCli(['drift', 'tab@9'], env);
    assert.equal(missing.code, 1);
  });

  test('the scheduled monitor evaluates on its cron and stops cleanly', async () => {
    const { DriftMonitor } = await import('../server/drift/drift-monitor.ts');
    const { driftEvaluations } = await import('../server/db/schema.ts');
    const count = async () => (await cp.plane.db.select().from(driftEvaluations)).length;
    const before = await count();
    const monitor = new DriftMonitor({ db: cp.plane.db, logger: cp.plane.logger, cron: '* * * * * *', windowS: 3600 });
    monitor.start();
    await until('a scheduled evaluation', async () => (await count()) > before, 5000);
    await monitor.stop();
    const after = await count();
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await count(), after, 'no run after stop()');
  });

  test('retention: raw windows and reports expire, hourly rollups stay', async () => {
    const windows = await windowCount();
    const later = new Date(Date.now() + 73 * 3600e3);
    const removed = await cp.plane.ingest.cleanup(later);
    assert.equal(removed.windows, windows);
    assert.equal(removed.telemetry, 5);
    assert.equal(removed.minuteRollups, 0, 'minute rollups live 168 h');
    assert.equal(await windowCount(), 0);
    const day = await cp.api('GET', '/api/v1/drift?model=tab@1&cohort=lab&window=1d');
    assert.equal(day.body.window.granularity, 'hour');
    assert.equal(day.body.windows, windows, 'hourly rollups still hold every window');
    const week = await cp.plane.ingest.cleanup(new Date(Date.now() + 200 * 3600e3));
    assert.ok(week.minuteRollups > 0);
  });
});
