// The two wire forms of a `stats` window over real MQTT into a real libsql database: the same windows
// sent as a `sketch` object (agents from before) by one device and as `sketchBase64` (agents now) by
// another are stored as the same bytes, roll up into the same cohort rows and give the same drift
// answer; a `sketchBase64` payload that is not a sketch is dropped and counted as `malformed`, and the
// device's next window is still stored.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { asc, eq } from 'drizzle-orm';
import mqtt, { type MqttClient } from 'mqtt';
import { createKeyList, signKeyList } from '../firmware-bundles/key-list.ts';
import { generateKeyPair } from '../firmware-bundles/keys.ts';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import { toWireStats } from '../protocol/messages/stats-wire.ts';
import type { SketchLayout } from '../protocol/sketch/feature-set-sketch.ts';
import { encodeSketch } from '../protocol/sketch/sketch-blob.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { statsWindows } from '../server/db/schema.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { generateRows, rowsToCsv, sketchOf, statsMessage } from './helpers/device-stats.ts';
import { gemmModel } from './helpers/models.ts';

const FACTS = { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' };
const BUNDLE_DEF = new URL('../firmware-bundles/tabular-demo/bundle.json', import.meta.url).pathname;
const model = { name: 'tab', version: 1 };

async function until<T>(what: string, fn: () => Promise<T | null | false>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('stats wire forms: sketch object and sketchBase64', () => {
  let cp: TestPlane;
  let layout: SketchLayout;
  let bundleId: string;
  const devices: Record<'json' | 'bin', { id: string; client: MqttClient }> = {} as never;

  const counter = async (name: string, labels: Record<string, string>) => {
    const m = await cp.plane.metrics.registry.getSingleMetric(name)!.get();
    return m.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0;
  };
  const stored = () => counter('flotilla_ingest_stored_total', { channel: 'stats' });
  const malformed = () => counter('flotilla_mqtt_messages_dropped_total', { channel: 'stats', reason: 'malformed' });

  before(async () => {
    // The 16 windows of the first test in one batch: a flush timer firing between a window's two forms
    // would merge the cohorts' hour rollups in other groupings (equal only to the last bit).
    cp = await startControlPlane({ driftCron: 'off', ingestBatchSize: 16, ingestFlushMs: 10_000 });
    await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel() as BodyInit });
    layout = (await cp.api('POST', '/api/v1/models/tab/versions/1/reference', { body: rowsToCsv(generateRows(2000, 1)), headers: { 'content-type': 'text/csv' } })).body.layout;
    const root = generateKeyPair();
    const release = (await cp.api('POST', '/api/v1/keys/release')).body;
    await cp.api('PUT', '/api/v1/keys/keylist', { json: signKeyList(createKeyList({ version: 1, root, keys: [release], threshold: 1, expiresAt: new Date(Date.now() + 86400e3) }), root.privateKeyPem) });
    await cp.api('POST', '/api/v1/cohorts', { json: { name: 'lab', selector: 'site=lab' } });
    for (const form of ['json', 'bin'] as const) {
      await cp.api('POST', '/api/v1/cohorts', { json: { name: `form-${form}`, selector: `form=${form}` } });
      const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'lab', form } } })).body.token;
      const r = (await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } })).body;
      devices[form] = { id: r.deviceId, client: await mqtt.connectAsync(cp.mqttUrl, { clientId: r.deviceId, username: r.deviceId, password: r.mqtt.password, reconnectPeriod: 0 }) };
    }
    const { definition, labels } = await loadBundleDefinition(BUNDLE_DEF);
    bundleId = (await cp.api('POST', '/api/v1/bundles', { json: { model: 'tab@1', definition, labels } })).body.id;
    assert.equal((await cp.api('POST', '/api/v1/deployments', { json: { bundle: bundleId, cohort: 'lab' } })).status, 201);
  });
  after(async () => {
    for (const d of Object.values(devices)) await d.client.endAsync().catch(() => undefined);
    await cp?.stop();
  });

  it('stores the same bytes, the same rollups and the same drift answer for both forms', async () => {
    const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000;
    const before = await stored();
    // Eight windows over three minutes, one with a shifted feature and one with empty outputs' null min/max.
    const windows = Array.from({ length: 8 }, (_, k) => {
      const start = new Date(hour + Math.floor(k / 3) * 60_000 + (k % 3) * 1000);
      const rows = generateRows(k === 7 ? 1 : 30 + k, 40 + k, k === 5 ? { feature: 'f1', sigmas: 2 } : undefined);
      return { seq: k + 1, start, end: new Date(start.getTime() + 50_000), sketch: sketchOf(layout, rows) };
    });
    for (const w of windows) {
      const json = statsMessage({ deviceId: devices.json.id, bundleId, model, ...w });
      const bin = toWireStats(statsMessage({ deviceId: devices.bin.id, bundleId, model, ...w }));
      assert.ok(!('sketch' in bin) && typeof bin.sketchBase64 === 'string');
      await devices.json.client.publishAsync(deviceTopic(devices.json.id, 'stats'), JSON.stringify(json), { qos: 1 });
      await devices.bin.client.publishAsync(deviceTopic(devices.bin.id, 'stats'), JSON.stringify(bin), { qos: 1 });
    }
    await until('all windows stored', async () => (await stored()) >= before + 16);

    const rawOf = (deviceId: string) => cp.plane.db.all<{ seq: number; sketch: ArrayBuffer; rows: number; window_start: string }>(`SELECT seq, sketch, rows, window_start FROM stats_windows WHERE device_id = '${deviceId}' ORDER BY seq`);
    const [fromJson, fromBin] = [await rawOf(devices.json.id), await rawOf(devices.bin.id)];
    assert.equal(fromBin.length, windows.length);
    for (let i = 0; i < windows.length; i++) {
      const expected = encodeSketch(windows[i].sketch);
      assert.ok(Buffer.from(fromJson[i].sketch).equals(expected), `window ${i + 1} from the JSON form is the encoded sketch`);
      assert.ok(Buffer.from(fromBin[i].sketch).equals(expected), `window ${i + 1} from sketchBase64 is the same bytes`);
      assert.deepEqual({ ...fromBin[i], sketch: null }, { ...fromJson[i], sketch: null });
    }

    const rollupsOf = async (cohort: string) =>
      (await cp.plane.db.all<{ granularity: string; bucket_start: string; windows: number; rows: number; sketch: ArrayBuffer }>(`SELECT granularity, bucket_start, windows, rows, sketch FROM stats_rollups WHERE scope = 'cohort' AND key = '${cohort}' ORDER BY granularity, bucket_start`)).map((r) => ({ ...r, sketch: Buffer.from(r.sketch).toString('base64') }));
    const [rj, rb] = [await rollupsOf('form-json'), await rollupsOf('form-bin')];
    assert.equal(rj.length, 4, 'three minute buckets and one hour');
    assert.deepEqual(rb, rj);

    const end = new Date(hour + 3_600_000).toISOString();
    const drift = async (cohort: string) => {
      const r = await cp.api('GET', `/api/v1/drift?model=tab%401&cohort=${cohort}&window=1h&end=${end}&histograms=true`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return JSON.parse(JSON.stringify(r.body).replaceAll(cohort, '<cohort>'));
    };
    const [dj, db] = [await drift('form-json'), await drift('form-bin')];
    assert.equal(dj.windows, windows.length);
    assert.deepEqual(db, dj);
  });

  it('drops and counts a sketchBase64 that is not a sketch; the next window is stored', async () => {
    const d = devices.bin;
    const start = new Date(Date.now() - 120_000);
    const good = toWireStats(statsMessage({ deviceId: d.id, bundleId, model, seq: 100, start, end: new Date(start.getTime() + 50_000), sketch: sketchOf(layout, generateRows(20, 7)) }));
    const bytes = Buffer.from(good.sketchBase64, 'base64');
    const bad = [
      bytes.subarray(0, bytes.length - 8).toString('base64'), // truncated
      Buffer.concat([bytes, Buffer.alloc(8)]).toString('base64'), // trailing numbers
      Buffer.concat([bytes.subarray(0, 6), Buffer.from('{"o":[],"f":[]}'), bytes.subarray(21)]).toString('base64'), // a header of another shape
      'not base64!',
      good.sketchBase64.replace(/^./, 'A'), // not the magic byte
    ];
    const dropped = await malformed();
    const before = await stored();
    let seq = 101;
    for (const sketchBase64 of bad) await d.client.publishAsync(deviceTopic(d.id, 'stats'), JSON.stringify({ ...good, seq: seq++, sketchBase64 }), { qos: 1 });
    // Both forms at once is refused too.
    await d.client.publishAsync(deviceTopic(d.id, 'stats'), JSON.stringify({ ...good, seq: seq++, sketch: statsMessage({ deviceId: d.id, bundleId, model, seq: 0, start, end: start, sketch: sketchOf(layout, generateRows(20, 7)) }).sketch }), { qos: 1 });
    await d.client.publishAsync(deviceTopic(d.id, 'stats'), JSON.stringify(good), { qos: 1 });
    await until('the good window stored', async () => (await cp.plane.ingest.flush(), (await stored()) >= before + 1));
    assert.equal((await malformed()) - dropped, bad.length + 1, 'every bad payload dropped as malformed');
    const rows = await cp.plane.db.select({ seq: statsWindows.seq }).from(statsWindows).where(eq(statsWindows.deviceId, d.id)).orderBy(asc(statsWindows.seq));
    assert.deepEqual(rows.map((r) => r.seq).filter((s) => s >= 100), [100], 'only the good window is stored');
    assert.ok(d.client.connected, 'the device stays connected');
  });
});
