// The stage's error-rate numbers come from one grouped query: only the stage's devices, only the
// device-scope rollups (not their cohort or fleet sums), only the minute buckets of the window.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { openDatabase } from '../db/client.ts';
import { telemetryRollups } from '../db/schema.ts';
import { createLatencyHistogram } from '../../protocol/sketch/latency-histogram.ts';
import { stageTelemetryTotals } from './stage-error-rate.ts';

let dir: string;
let db: Awaited<ReturnType<typeof openDatabase>>;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'flotilla-stage-rate-'));
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
  assert.deepEqual(await stageTelemetryTotals(db.db, ids, start, end), { inferences: 180, errors: 5 });
  assert.deepEqual(await stageTelemetryTotals(db.db, [], start, end), { inferences: 0, errors: 0 });
  assert.deepEqual(await stageTelemetryTotals(db.db, ['nobody'], start, end), { inferences: 0, errors: 0 });
});
