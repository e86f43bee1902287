// The stage gates' verdicts at their thresholds, over a real database whose telemetry went through
// ingest's own writer (raw reports, per-minute device and cohort rollups): the error rate, the latency
// regression (worst stage device's p95 against the cohort's hour before the rollout, the rollout's own
// minute read from raw reports on both sides), and the update counts. Written before the gates' reads
// were rewritten for 10,000-device stages (issue 16), so it pins the verdicts they gave per device.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { TelemetryMessage } from '../protocol/messages/telemetry.ts';
import { createLatencyHistogram, recordLatency } from '../protocol/sketch/latency-histogram.ts';
import { openDatabase } from '../server/db/client.ts';
import { devices } from '../server/db/schema.ts';
import { writeTelemetry } from '../server/ingest/telemetry-writer.ts';
import { RolloutGates } from '../server/jobs/retrain-policy.ts';
import { stageGates, type GateResult } from '../server/rollouts/rollout-gates.ts';

let dir: string;
let db: Awaited<ReturnType<typeof openDatabase>>;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'flotilla-gate-verdicts-'));
  db = await openDatabase(`file:${path.join(dir, 'db.sqlite')}`);
});
after(async () => {
  db.client.close();
  await rm(dir, { recursive: true, force: true });
});

const V1 = 'bun_v1';
const V2 = 'bun_v2';
// The rollout (and its only stage) started 20 s into the 12:10 minute; the gates are read at 12:15.
const STARTED = '2026-01-01T12:10:20.000Z';
const NOW = new Date('2026-01-01T12:15:00.000Z');
const at = (hhmmss: string) => `2026-01-01T${hhmmss}.000Z`;

let seq = 0;
/** One telemetry report: 19 served and 1 failed request (error rate 0.05), each request `ms` long. */
function report(deviceId: string, when: string, bundle: string, ms: number, n = 20): TelemetryMessage {
  const latency = createLatencyHistogram();
  for (let i = 0; i < n; i++) recordLatency(latency, ms);
  return { v: 1, deviceId, at: at(when), intervalS: 20, seq: seq++, inferences: n - 1, errors: { timeout: 1 }, latency, activeS: 20, queueDepth: 0, cpu: 0.1, rssBytes: 1e6, diskFreeBytes: 1e9, uptimeS: 100, activeBundle: { id: bundle, counter: bundle === V1 ? 1 : 2 } };
}

async function ingest(cohort: string, reports: TelemetryMessage[]): Promise<void> {
  // One transaction per report, in time order, as ingest batches arrive.
  for (const m of reports) await db.db.transaction((tx) => writeTelemetry(tx, [{ deviceId: m.deviceId, message: m, cohorts: [cohort] }], new Date(Date.parse(m.at) + 500)));
}

/** The gates at `now` (12:15 unless given); each active device switched when the stage started unless `switchedAt` says otherwise. */
async function gatesOf(cohort: string, ids: string[], gates: Partial<RolloutGates>, stage: { active?: string[]; failed?: string[]; switchedAt?: Record<string, string> } = {}, now = NOW): Promise<Map<string, GateResult>> {
  const active = stage.active ?? ids;
  const switchedAt = new Map(active.map((id) => [id, Date.parse(stage.switchedAt?.[id] ?? STARTED)]));
  const results = await db.db.transaction((tx) =>
    stageGates(tx, {
      gates: RolloutGates.parse(gates),
      stage: { ids, active, failed: stage.failed ?? [], switchedAt },
      bundleId: V2,
      cohort,
      stageStartedAt: STARTED,
      rolloutCreatedAt: STARTED,
      hasPrevious: true,
      now,
      bakeS: 60,
      last: true,
    }),
  );
  return new Map(results.map((g) => [g.name, g]));
}

/**
 * Cohort `name` with `n` devices: each reports at :05 of every minute from 12:00 to 12:10 on v1 (10 ms), then
 * at 12:10:30 and 12:10:50 and :30 of every minute after on v2 (`stageMs`, per device).
 */
async function cohortWithHistory(name: string, n: number, stageMs: (i: number) => number): Promise<string[]> {
  const ids = Array.from({ length: n }, (_, i) => `dev_${name}${i}`);
  await db.db.insert(devices).values(ids.map((id) => ({ id, status: 'approved' as const, labels: { c: name }, facts: {}, credentialHash: 'sha256$x' })));
  const reports: TelemetryMessage[] = [];
  for (let m = 0; m <= 10; m++) for (const id of ids) reports.push(report(id, `12:${String(m).padStart(2, '0')}:05`, V1, 10));
  for (const [i, id] of ids.entries()) reports.push(report(id, '12:10:30', V2, stageMs(i)), report(id, '12:10:50', V2, stageMs(i)));
  for (let m = 11; m <= 14; m++) for (const [i, id] of ids.entries()) reports.push(report(id, `12:${m}:30`, V2, stageMs(i)));
  await ingest(name, reports);
  return ids;
}

test('error rate: 1 failed in 20 requests passes a limit of 0.05 and fails 0.049', async () => {
  const ids = await cohortWithHistory('rate', 3, () => 10);
  const pass = (await gatesOf('rate', ids, { maxErrorRate: 0.05 })).get('errorRate')!;
  assert.equal(pass.status, 'pass', JSON.stringify(pass));
  assert.equal(pass.value, 0.05);
  // Only what the new bundle served: each device switched at the stage's start (12:10:20), so from its first
  // whole minute a minute after the switch, 12:12, to 12:14 (one report each), 3 devices — not the 12:10 and
  // 12:11 buckets, which hold v1's requests too.
  assert.equal(pass.reason, `${3 * 3} errors in ${3 * 3 * 20} requests`);
  assert.equal((await gatesOf('rate', ids, { maxErrorRate: 0.049 })).get('errorRate')!.status, 'fail');
  // Only the stage's devices count: a stage of one sees one device's reports.
  assert.equal((await gatesOf('rate', ids.slice(0, 1), { maxErrorRate: 0.05 })).get('errorRate')!.reason, '3 errors in 60 requests');
  // Only its active devices: a device still updating (or failed) serves the previous bundle.
  assert.equal((await gatesOf('rate', ids, { maxErrorRate: 0.05 }, { active: ids.slice(0, 2) })).get('errorRate')!.reason, '6 errors in 120 requests');
});

test("latency: the worst device's p95 against the hour before; 2× passes a ratio of 2 and fails 1.99", async () => {
  const ids = await cohortWithHistory('lat', 4, (i) => (i === 2 ? 20 : 12));
  const pass = (await gatesOf('lat', ids, { maxLatencyRatio: 2 })).get('latencyRegression')!;
  assert.equal(pass.status, 'pass', JSON.stringify(pass));
  assert.equal(pass.value, 2);
  assert.match(pass.reason, /^worst p95 20\.00 ms \(dev_lat2\) vs 10\.00 ms before$/);
  const fail = (await gatesOf('lat', ids, { maxLatencyRatio: 1.99 })).get('latencyRegression')!;
  assert.equal(fail.status, 'fail');
  assert.equal(fail.value, 2);
  // Only the stage's active devices are measured: without dev_lat2 the worst is 12 ms.
  const without = (await gatesOf('lat', ids, { maxLatencyRatio: 1.2 }, { active: [ids[0], ids[1], ids[3]] })).get('latencyRegression')!;
  assert.equal(without.status, 'pass');
  assert.match(without.reason, /^worst p95 12\.00 ms \(dev_lat0\) vs 10\.00 ms before$/);
});

test("a device without a whole minute on the new bundle yet counts only its reports served wholly on it; the baseline's last minute only reports sent before the rollout", async () => {
  const ids = ['dev_partial0', 'dev_partial1', 'dev_partial2'];
  await db.db.insert(devices).values(ids.map((id) => ({ id, status: 'approved' as const, labels: { c: 'partial' }, facts: {}, credentialHash: 'sha256$x' })));
  await ingest('partial', [
    // The only report before the rollout: the baseline (no earlier hour), in the rollout's own minute.
    report(ids[0], '12:10:05', V1, 10),
    // dev_partial1's first v2 report follows a v1 one: its interval began before the switch, so its 200 ms do not count.
    report(ids[1], '12:10:06', V1, 10),
    report(ids[1], '12:10:30', V2, 200),
    // dev_partial2's second v2 report is wholly on v2: its 40 ms count, from the raw reports (12:10 is a mixed bucket).
    report(ids[2], '12:10:07', V1, 10),
    report(ids[2], '12:10:31', V2, 30),
    report(ids[2], '12:10:51', V2, 40),
  ]);
  // At 12:11:55 the devices (switched at 12:10:20) have no whole minute on v2: the first is 12:12 (a report
  // up to a minute long may still hold v1's requests before it).
  const early = new Date('2026-01-01T12:11:55.000Z');
  const g = (await gatesOf('partial', ids, { maxLatencyRatio: 4 }, {}, early)).get('latencyRegression')!;
  assert.equal(g.status, 'pass', JSON.stringify(g));
  assert.equal(g.value, 4);
  assert.match(g.reason, /^worst p95 40\.00 ms \(dev_partial2\) vs 10\.00 ms before$/);
  assert.equal((await gatesOf('partial', ids, { maxLatencyRatio: 3.99 }, {}, early)).get('latencyRegression')!.status, 'fail');
});

test('a device that switched minutes into the stage is measured on the new bundle only (latency and error rate), not on the minutes it still served the previous one', async () => {
  const id = 'dev_late0';
  await db.db.insert(devices).values({ id, status: 'approved', labels: { c: 'late' }, facts: {}, credentialHash: 'sha256$x' });
  // 10 ms on v1 before the rollout and for three minutes into the stage (500 requests a minute), then the
  // switch at 12:13:55 and 100 ms on v2: 20 requests per report, a few percent of the stage's minutes.
  await ingest('late', [
    report(id, '12:09:05', V1, 10, 500),
    ...['12:11:05', '12:12:05', '12:13:05', '12:13:50'].map((t) => report(id, t, V1, 10, 500)),
    ...['12:14:00', '12:14:10', '12:14:20'].map((t) => report(id, t, V2, 100)),
  ]);
  const switchedAt = { [id]: at('12:13:55') };
  // At 12:15 it has no whole minute on v2 (its first is 12:15): its two reports served wholly on v2 count.
  const soon = (await gatesOf('late', [id], { maxLatencyRatio: 4 }, { switchedAt })).get('latencyRegression')!;
  assert.equal(soon.status, 'fail', JSON.stringify(soon));
  assert.match(soon.reason, /^worst p95 100\.00 ms \(dev_late0\) vs 10\.00 ms before$/);
  // The error rate likewise: 1 in 20 on v2 (its two reports), not 1 in 500 on v1 diluting it.
  const rate = (await gatesOf('late', [id], { maxLatencyRatio: null, maxErrorRate: 0.04 }, { switchedAt })).get('errorRate')!;
  assert.equal(rate.status, 'fail', JSON.stringify(rate));
  assert.equal(rate.reason, '2 errors in 40 requests');
  // Later its whole minutes on v2 (12:15 and 12:16) count, not the v1 minutes of the stage.
  await ingest('late', ['12:15:30', '12:16:30', '12:17:10'].map((t) => report(id, t, V2, 100)));
  const later = (await gatesOf('late', [id], { maxLatencyRatio: 4 }, { switchedAt }, new Date('2026-01-01T12:17:30.000Z'))).get('latencyRegression')!;
  assert.equal(later.status, 'fail', JSON.stringify(later));
  assert.equal(later.value, 10);
});

test('latency without requests on the new bundle is no-data after the bake', async () => {
  const ids = ['dev_idle0'];
  await db.db.insert(devices).values(ids.map((id) => ({ id, status: 'approved' as const, labels: { c: 'idle' }, facts: {}, credentialHash: 'sha256$x' })));
  await ingest('idle', [report(ids[0], '12:09:05', V1, 10)]);
  const g = (await gatesOf('idle', ids, { maxLatencyRatio: 2 })).get('latencyRegression')!;
  assert.equal(g.status, 'no-data', JSON.stringify(g));
  assert.equal(g.reason.startsWith('no requests served on the new bundle: latency not measured'), true, g.reason);
});

test('update counts: failed updates and the success ratio at their limits, the last stage complete only when every device is done', async () => {
  const ids = ['dev_u0', 'dev_u1', 'dev_u2', 'dev_u3'];
  const g = await gatesOf('none', ids, { maxFailedUpdates: 1, minUpdateSuccessRatio: 0.75, maxLatencyRatio: null }, { active: ids.slice(0, 3), failed: [ids[3]] });
  assert.deepEqual([g.get('failedUpdates')!.status, g.get('updateSuccessRatio')!.status, g.get('stageComplete')!.status], ['pass', 'pass', 'pass']);
  assert.equal(g.get('updateSuccessRatio')!.value, 0.75);
  const strict = await gatesOf('none', ids, { maxFailedUpdates: 0, minUpdateSuccessRatio: 0.76, maxLatencyRatio: null }, { active: ids.slice(0, 3), failed: [ids[3]] });
  assert.deepEqual([strict.get('failedUpdates')!.status, strict.get('updateSuccessRatio')!.status], ['fail', 'fail']);
  const updating = await gatesOf('none', ids, { maxLatencyRatio: null }, { active: ids.slice(0, 2), failed: [] });
  assert.deepEqual([updating.get('updateSuccessRatio')!.status, updating.get('stageComplete')!.status], ['waiting', 'waiting']);
  assert.equal(updating.get('stageComplete')!.value, 2);
});
