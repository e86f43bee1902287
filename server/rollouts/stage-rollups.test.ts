// A stage's device rollups in one grouped read (stage-rollups.ts): the error rate's sums cover only the
// stage's devices, only device-scope rollups, only the window's minute buckets; the latency gate's worst
// device equals what a telemetry summary per device gives (the computation it replaced): same buckets,
// same merged histograms, same p95.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createLatencyHistogram, recordLatency } from '../../protocol/sketch/latency-histogram.ts';
import { openDatabase } from '../db/client.ts';
import { devices, telemetryRollups } from '../db/schema.ts';
import { telemetrySummary } from '../telemetry/telemetry-service.ts';
import { readStageRollups, worstLatency } from './stage-rollups.ts';

let dir: string;
let db: Awaited<ReturnType<typeof openDatabase>>;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'flotilla-stage-rollups-'));
  db = await openDatabase(`file:${path.join(dir, 'db.sqlite')}`);
});
after(async () => {
  db.client.close();
  await rm(dir, { recursive: true, force: true });
});

test('sums inferences and errors of the stage devices in the window, in one query for thousands of ids', async () => {
  const end = new Date('2026-01-01T12:10:30Z');
  const start = new Date('2026-01-01T12:05:30Z'); // its minute bucket 12:05 counts
  const row = (scope: 'device' | 'cohort' | 'fleet', key: string, minute: string, inferences: number, errorCount: number): typeof telemetryRollups.$inferInsert => ({
    scope,
    key,
    bucketStart: `2026-01-01T12:${minute}:00.000Z`,
    reports: 1,
    inferences,
    errorCount,
    errors: errorCount ? { INFERENCE_FAILED: errorCount } : {},
    latency: createLatencyHistogram(),
    firstStart: `2026-01-01T12:${minute}:00.000Z`,
    lastAt: `2026-01-01T12:${minute}:10.000Z`,
    updatedAt: end.toISOString(),
  });
  await db.db.insert(telemetryRollups).values([
    row('device', 'd1', '05', 100, 1),
    row('device', 'd1', '09', 50, 4),
    row('device', 'd2', '06', 30, 0),
    row('device', 'd1', '04', 1000, 1000), // before the window
    row('device', 'd2', '11', 1000, 1000), // at or after the end
    row('device', 'other', '06', 1000, 1000), // not in the stage
    row('cohort', 'd1', '06', 1000, 1000), // another scope with a key that looks like a stage device
    row('fleet', '*', '06', 1000, 1000),
  ]);
  const ids = ['d1', 'd2', ...Array.from({ length: 9998 }, (_, i) => `absent-${i}`)];
  const totals = async (ids: string[]) => {
    const r = await readStageRollups(db.db, ids, { from: start, cuts: new Map(ids.map((id) => [id, Date.parse('2026-01-01T12:05:00Z')])), end });
    return { inferences: r.inferences, errors: r.errors };
  };
  assert.deepEqual(await totals(ids), { inferences: 180, errors: 5 });
  assert.deepEqual(await totals([]), { inferences: 0, errors: 0 });
  assert.deepEqual(await totals(['nobody']), { inferences: 0, errors: 0 });
});

const histogram = (...ms: number[]) => {
  const h = createLatencyHistogram();
  for (const v of ms) recordLatency(h, v);
  return h;
};
const row = (scope: 'device' | 'cohort' | 'fleet', key: string, minute: string, latency: ReturnType<typeof histogram>): typeof telemetryRollups.$inferInsert => ({
  scope,
  key,
  bucketStart: `2026-01-01T12:${minute}:00.000Z`,
  reports: 1,
  inferences: latency.count,
  errorCount: 0,
  errors: {},
  latency,
  firstStart: `2026-01-01T12:${minute}:00.000Z`,
  lastAt: `2026-01-01T12:${minute}:10.000Z`,
  updatedAt: '2026-01-01T12:30:00.000Z',
});

test('the worst p95 of a stage equals the per-device telemetry summaries, in one query for thousands of ids', async () => {
  const ids = ['dev_aaaaaaaa', 'dev_bbbbbbbb', 'dev_cccccccc', 'dev_dddddddd', 'dev_eeeeeeee'];
  await db.db.insert(devices).values(ids.map((id) => ({ id, status: 'approved' as const, labels: {}, facts: {}, credentialHash: 'sha256$x' })));
  await db.db.delete(telemetryRollups); // the sums test's rows
  const slow = Array.from({ length: 40 }, (_, i) => 5 + (i % 10));
  await db.db.insert(telemetryRollups).values([
    row('device', ids[0], '05', histogram(...slow)),
    row('device', ids[0], '07', histogram(...slow.map((v) => v * 2))), // two buckets merged
    row('device', ids[1], '06', histogram(...slow.map((v) => v * 3))), // the worst in the window
    row('device', ids[2], '04', histogram(...slow.map((v) => v * 50))), // before the window: not counted
    row('device', ids[2], '06', histogram(2, 3, 4)),
    row('device', ids[3], '10', histogram(...slow.map((v) => v * 50))), // at the end: not counted
    row('cohort', ids[4], '06', histogram(...slow.map((v) => v * 50))), // another scope with a device-like key
    row('fleet', '*', '06', histogram(...slow.map((v) => v * 50))),
    row('device', 'dev_notinstage', '06', histogram(...slow.map((v) => v * 50))), // not in the stage
  ]);
  const end = new Date('2026-01-01T12:10:00Z');
  const worst = async (stage: string[], start: Date, until: Date) => worstLatency(stage, await readStageRollups(db.db, stage, { from: start, cuts: new Map(stage.map((id) => [id, Math.floor(start.getTime() / 60_000) * 60_000])), end: until }));
  for (const windowS of [300, 240, 30]) {
    const start = new Date(end.getTime() - windowS * 1000);
    // What the gate computed before: one telemetry summary per device, the highest p95 (first on a tie).
    let expected: { id: string; p95: number } | null = null;
    for (const id of ids) {
      const p95 = (await telemetrySummary(db.db, { device: id, windowS, end })).latency.p95;
      if (p95 !== null && (!expected || p95 > expected.p95)) expected = { id, p95 };
    }
    const many = [...ids, ...Array.from({ length: 9995 }, (_, i) => `dev_absent${String(i).padStart(5, '0')}`)];
    assert.deepEqual(await worst(many, start, end), expected, `window ${windowS} s`);
  }
  // The 5-minute window (12:05 to 12:10) sees devices a, b and c; b is the worst.
  assert.equal((await worst(ids, new Date(end.getTime() - 300_000), end))?.id, ids[1]);
  assert.equal(await worst([], new Date(end.getTime() - 300_000), end), null);
  assert.equal(await worst([ids[3], ids[4]], new Date(end.getTime() - 300_000), end), null);
});
