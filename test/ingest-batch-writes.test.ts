// The batch writers (one json_each statement per table per batch): rollups stay exact across batches
// (each equals the merge of every window in its bucket, whatever batches they came in), a resend
// inside one batch is stored and rolled up once, sketches are stored binary (decoding to the message's
// own sketch), there are no per-device rollups, and a late telemetry report adds to the rollups
// without replacing the newer resources.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { and, eq, sql } from 'drizzle-orm';
import { createKeyList, signKeyList } from '../firmware-bundles/key-list.ts';
import { generateKeyPair } from '../firmware-bundles/keys.ts';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import { mergeAllFeatureSetSketches, mergeFeatureSetSketches, type FeatureSetSketch, type SketchLayout } from '../protocol/sketch/feature-set-sketch.ts';
import { toWireStats } from '../protocol/messages/stats-wire.ts';
import { encodeSketch } from '../protocol/sketch/sketch-blob.ts';
import { statsRollups, statsWindows, telemetryLast, telemetryRollups } from '../server/db/schema.ts';
import { bucketStart } from '../server/ingest/buckets.ts';
import { mergeLatencyHistograms } from '../protocol/sketch/latency-histogram.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { generateRows, rowsToCsv, sketchOf, statsMessage, telemetryMessage } from './helpers/device-stats.ts';
import { gemmModel } from './helpers/models.ts';

const FACTS = { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' };
const BUNDLE_DEF = new URL('../firmware-bundles/tabular-demo/bundle.json', import.meta.url).pathname;
const model = { name: 'tab', version: 1 };
type FeatureSketch = FeatureSetSketch['features'][string];

describe('ingest batch writes', () => {
  let cp: TestPlane;
  let layout: SketchLayout;
  let bundleId: string;
  const ids: string[] = [];

  before(async () => {
    cp = await startControlPlane({ driftCron: 'off' });
    await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel() as BodyInit });
    layout = (await cp.api('POST', '/api/v1/models/tab/versions/1/reference', { body: rowsToCsv(generateRows(2000, 1)), headers: { 'content-type': 'text/csv' } })).body.layout;
    const root = generateKeyPair();
    const release = (await cp.api('POST', '/api/v1/keys/release')).body;
    await cp.api('PUT', '/api/v1/keys/keylist', { json: signKeyList(createKeyList({ version: 1, root, keys: [release], threshold: 1, expiresAt: new Date(Date.now() + 86400e3) }), root.privateKeyPem) });
    await cp.api('POST', '/api/v1/cohorts', { json: { name: 'lab', selector: 'site=lab' } });
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'lab' } } })).body.token;
    for (let i = 0; i < 3; i++) ids.push((await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } })).body.deviceId);
    const { definition, labels } = await loadBundleDefinition(BUNDLE_DEF);
    bundleId = (await cp.api('POST', '/api/v1/bundles', { json: { model: 'tab@1', definition, labels } })).body.id;
    assert.equal((await cp.api('POST', '/api/v1/deployments', { json: { bundle: bundleId, cohort: 'lab' } })).status, 201);
  });
  after(() => cp?.stop());

  it('stats: rollups equal the merge of every window of their bucket across batches; a resend in the same batch counts once', async () => {
    const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000; // a whole past hour
    const sent: ReturnType<typeof statsMessage>[] = [];
    const send = (device: number, minute: number, seq: number) => {
      const start = new Date(hour + minute * 60_000 + device * 1000);
      const m = statsMessage({ deviceId: ids[device], bundleId, model, seq, start, end: new Date(start.getTime() + 50_000), sketch: sketchOf(layout, generateRows(20 + seq, 100 * device + seq)) });
      sent.push(m);
      // Parsed from JSON, as the device bus hands it over.
      return cp.plane.ingest.acceptStats(m.deviceId, JSON.parse(JSON.stringify(m)));
    };
    // Batch 1: three devices, minutes 0 and 1; device 0 sends its first window twice.
    const first = [send(0, 0, 1), send(1, 0, 1), send(2, 1, 1), send(0, 1, 2)];
    const resend = cp.plane.ingest.acceptStats(ids[0], JSON.parse(JSON.stringify(sent[0])));
    await cp.plane.ingest.flush();
    await Promise.all([...first, resend]);
    // Batch 2: the same buckets again (existing rows read, merged and rewritten) and a new minute.
    await Promise.all([send(1, 0, 2), send(2, 1, 2), send(0, 1, 3), send(1, 5, 3)]);
    await cp.plane.ingest.flush();

    const windows = await cp.plane.db.select().from(statsWindows);
    assert.equal(windows.length, sent.length, 'the in-batch resend is stored once');
    for (const w of windows) {
      const m = sent.find((s) => s.deviceId === w.deviceId && s.seq === w.seq)!;
      assert.deepStrictEqual(w.sketch, m.sketch);
    }
    const raw = await cp.plane.db.all<{ type: string; bytes: number }>(`SELECT typeof(sketch) AS type, length(sketch) AS bytes FROM stats_windows WHERE device_id = '${ids[1]}' AND seq = 3`);
    assert.equal(raw[0].type, 'blob', 'stored binary');
    assert.ok(raw[0].bytes < JSON.stringify(sent.at(-1)!.sketch).length * 0.75, `${raw[0].bytes} bytes, under 3/4 of the JSON text`);

    const expect = (scope: 'device' | 'cohort' | 'fleet', key: string, granularity: 'minute' | 'hour', bucket: string, pick: (m: (typeof sent)[number]) => boolean) => {
      const members = sent.filter((m) => pick(m) && bucketStart(m.windowStart, granularity) === bucket);
      return { scope, key, granularity, bucketStart: bucket, windows: members.length, rows: members.reduce((s, m) => s + m.sketch.quality.rows, 0), sketch: mergeAllFeatureSetSketches(members.map((m) => m.sketch)) };
    };
    const rollups = await cp.plane.db.select().from(statsRollups);
    const minute0 = bucketStart(hour, 'minute');
    const minute1 = bucketStart(hour + 60_000, 'minute');
    const hourKey = bucketStart(hour, 'hour');
    const wanted = [
      expect('fleet', '*', 'minute', minute0, () => true),
      expect('fleet', '*', 'minute', minute1, () => true),
      expect('cohort', 'lab', 'hour', hourKey, () => true),
      expect('fleet', '*', 'hour', hourKey, () => true),
      expect('cohort', 'lab', 'minute', minute1, () => true),
    ];
    for (const w of wanted) {
      const got = rollups.find((r) => r.scope === w.scope && r.key === w.key && r.granularity === w.granularity && r.bucketStart === w.bucketStart);
      assert.ok(got, `${w.scope} ${w.key} ${w.granularity} ${w.bucketStart}`);
      assert.equal(got.windows, w.windows, `${w.scope} ${w.granularity} windows`);
      assert.equal(got.rows, w.rows);
      // Exact: the same merge (floating-point sums may differ in the last bits with another merge order).
      assert.deepStrictEqual(got.sketch.quality, w.sketch.quality);
      for (const [name, f] of Object.entries(w.sketch.features)) {
        const g: FeatureSketch = got.sketch.features[name];
        assert.equal(g.count, f.count, name);
        if (f.kind === 'numeric' && g.kind === 'numeric') {
          assert.deepStrictEqual(g.bins, f.bins, name);
          assert.ok(Math.abs(g.mean - f.mean) <= 1e-9 * Math.max(1, Math.abs(f.mean)), `${name} mean`);
        }
      }
    }
    // Nothing reads per-device rollups (a device's windows are its raw rows): none are written.
    assert.equal(rollups.filter((r) => r.scope === 'device').length, 0);
  });

  it('stats: a rollup stored as JSON text (before the binary form) is still read and merged into', async () => {
    const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3 * 3_600_000;
    const mk = (seq: number) => statsMessage({ deviceId: ids[0], bundleId, model, seq, start: new Date(hour), end: new Date(hour + 50_000), sketch: sketchOf(layout, generateRows(30, 900 + seq)) });
    const old = mk(500);
    const key = { scope: 'fleet', key: '*', granularity: 'hour', bucket: bucketStart(hour, 'hour') };
    const [{ versionId }] = await cp.plane.db.select({ versionId: statsWindows.modelVersionId }).from(statsWindows).limit(1);
    // As migration 0015 leaves an older row: the same column, the sketch's JSON text.
    await cp.plane.db.run(
      sql`INSERT INTO stats_rollups (scope, key, model_version_id, granularity, bucket_start, windows, rows, sketch, updated_at) VALUES (${key.scope}, ${key.key}, ${versionId}, ${key.granularity}, ${key.bucket}, 1, ${old.sketch.quality.rows}, ${JSON.stringify(old.sketch)}, ${new Date().toISOString()})`,
    );
    const [before] = await cp.plane.db.select().from(statsRollups).where(and(eq(statsRollups.scope, 'fleet'), eq(statsRollups.granularity, 'hour'), eq(statsRollups.bucketStart, key.bucket)));
    assert.deepStrictEqual(before.sketch, old.sketch, 'JSON text read back');
    const next = mk(501);
    await Promise.all([cp.plane.ingest.acceptStats(ids[0], JSON.parse(JSON.stringify(next))), cp.plane.ingest.flush()]);
    const [after] = await cp.plane.db.select().from(statsRollups).where(and(eq(statsRollups.scope, 'fleet'), eq(statsRollups.granularity, 'hour'), eq(statsRollups.bucketStart, key.bucket)));
    assert.equal(after.windows, 2);
    assert.deepStrictEqual(after.sketch.quality, mergeAllFeatureSetSketches([old.sketch, next.sketch]).quality);
    const [{ type }] = await cp.plane.db.all<{ type: string }>(sql`SELECT typeof(sketch) AS type FROM stats_rollups WHERE scope = 'fleet' AND granularity = 'hour' AND bucket_start = ${key.bucket}`);
    assert.equal(type, 'blob', 'rewritten binary');
  });

  it('stats: each rollup row holds the bytes of the object merge, batch by batch (windows merged in place), also with a window whose features come in another order', async () => {
    const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 5 * 3_600_000;
    const reversed = (s: FeatureSetSketch): FeatureSetSketch => ({ ...s, features: Object.fromEntries(Object.entries(s.features).reverse()) });
    const batches: Array<ReturnType<typeof statsMessage>[]> = [];
    let seq = 1000;
    for (let b = 0; b < 3; b++) {
      const batch: ReturnType<typeof statsMessage>[] = [];
      for (let i = 0; i < 7; i++) {
        const device = i % 3;
        const start = new Date(hour + (i % 2) * 60_000 + b * 1000 + i);
        const sketch = sketchOf(layout, generateRows(5 + ((b * 7 + i) % 40), 4000 + b * 10 + i));
        // In the last batch one window lists its features in reverse (its bytes' header differs).
        batch.push(statsMessage({ deviceId: ids[device], bundleId, model, seq: seq++, start, end: new Date(start.getTime() + 50_000), sketch: b === 2 && i === 3 ? reversed(sketch) : sketch }));
      }
      batches.push(batch);
      await Promise.all([...batch.map((m) => cp.plane.ingest.acceptStats(m.deviceId, JSON.parse(JSON.stringify(toWireStats(m))))), cp.plane.ingest.flush()]);
    }
    const rows = await cp.plane.db.all<{ scope: string; granularity: string; bucket_start: string; windows: number; sketch: ArrayBuffer }>(
      sql`SELECT scope, granularity, bucket_start, windows, sketch FROM stats_rollups WHERE bucket_start >= ${new Date(hour).toISOString()} AND bucket_start < ${new Date(hour + 3_600_000).toISOString()}`,
    );
    for (const r of rows) {
      // What the object merge stores: each batch's windows merged left to right, then into the stored rollup.
      let expected: FeatureSetSketch | null = null;
      let windows = 0;
      for (const batch of batches) {
        const members = batch.filter((m) => bucketStart(m.windowStart, r.granularity as 'minute' | 'hour') === r.bucket_start).map((m) => m.sketch);
        if (!members.length) continue;
        windows += members.length;
        const sum = members.length === 1 ? members[0] : mergeAllFeatureSetSketches(members);
        expected = expected ? mergeFeatureSetSketches(expected, sum) : sum;
      }
      assert.ok(expected, `${r.scope} ${r.granularity} ${r.bucket_start}`);
      assert.equal(r.windows, windows);
      assert.ok(Buffer.from(r.sketch).equals(encodeSketch(expected)), `${r.scope} ${r.granularity} ${r.bucket_start}: the object merge's bytes`);
    }
    assert.equal(rows.length, 6, 'two minutes and an hour, for the cohort and the fleet');
  });

  it('telemetry: rollups add up across batches, a late report counts but keeps the newer resources', async () => {
    const t0 = Math.floor(Date.now() / 60_000) * 60_000 - 5 * 60_000;
    const report = (seq: number, at: number, cpu: number) => telemetryMessage({ deviceId: ids[2], seq, at: new Date(at), inferences: 10 * seq, cpu, errors: seq % 2 ? { timeout: 1 } : {} });
    await Promise.all([report(1, t0 + 10_000, 0.1), report(2, t0 + 20_000, 0.2)].map((m) => cp.plane.ingest.acceptTelemetry(m.deviceId, JSON.parse(JSON.stringify(m)))));
    await cp.plane.ingest.flush();
    // Late (store and forward): an earlier time, a later seq, in the next batch.
    const late = report(3, t0 + 5_000, 0.9);
    const latencies = [report(1, t0 + 10_000, 0.1), report(2, t0 + 20_000, 0.2), late].reduce((n, m) => n + m.latency.count, 0);
    await Promise.all([cp.plane.ingest.acceptTelemetry(ids[2], JSON.parse(JSON.stringify(late))), cp.plane.ingest.flush()]);
    const [row] = await cp.plane.db.select().from(telemetryRollups).where(and(eq(telemetryRollups.scope, 'device'), eq(telemetryRollups.key, ids[2])));
    assert.equal(row.reports, 3);
    assert.equal(row.inferences, 60);
    assert.deepEqual(row.errors, { timeout: 2 });
    assert.equal(row.errorCount, 2);
    assert.equal(row.latency.count, latencies);
    assert.equal(row.lastAt, new Date(t0 + 20_000).toISOString());
    // Merged in place, equal to merging the histograms object by object: every scope, none counted twice.
    const [r1, r2] = [report(1, t0 + 10_000, 0.1), report(2, t0 + 20_000, 0.2)];
    const expected = mergeLatencyHistograms(mergeLatencyHistograms(r1.latency, r2.latency), late.latency);
    for (const [scope, key] of [['device', ids[2]], ['cohort', 'lab'], ['fleet', '*']]) {
      const [r] = await cp.plane.db.select().from(telemetryRollups).where(and(eq(telemetryRollups.scope, scope as 'device'), eq(telemetryRollups.key, key), eq(telemetryRollups.bucketStart, row.bucketStart)));
      assert.deepStrictEqual(r.latency, expected, `${scope} latency`);
      assert.equal(JSON.stringify(r.latency), JSON.stringify(expected), `${scope}: the same JSON text`);
    }
    const [last] = await cp.plane.db.select().from(telemetryLast).where(eq(telemetryLast.deviceId, ids[2]));
    assert.equal(last.cpu, 0.2);
    assert.equal(last.seq, 2);
  });
});
