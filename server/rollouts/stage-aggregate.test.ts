// The stage aggregate (stage-aggregate.ts) answers what one read of the stage's rollups answers
// (stage-rollups.ts), tick after tick, with telemetry written by ingest's own writer: as minutes seal, when
// a late report lands in a minute it already holds, when a device joins the stage, when retention drops a
// minute, and when time goes backwards (then the one read answers).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { lt } from 'drizzle-orm';
import { createLatencyHistogram, recordLatency } from '../../protocol/sketch/latency-histogram.ts';
import type { TelemetryMessage } from '../../protocol/messages/telemetry.ts';
import { openDatabase } from '../db/client.ts';
import { telemetryRollups } from '../db/schema.ts';
import { writeTelemetry } from '../ingest/telemetry-writer.ts';
import { StageAggregate } from './stage-aggregate.ts';
import { readStageRollups, worstLatency, type StageRollups, type StageWindow } from './stage-rollups.ts';

let dir: string;
let db: Awaited<ReturnType<typeof openDatabase>>;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'flotilla-stage-aggregate-'));
  db = await openDatabase(`file:${path.join(dir, 'db.sqlite')}`);
});
after(async () => {
  db.client.close();
  await rm(dir, { recursive: true, force: true });
});

const T0 = Date.parse('2026-01-01T12:00:00Z');
const STAGE_START = new Date(T0 + 20_000).toISOString(); // 20 s into 12:00: latency from 12:01
const seqs = new Map<string, number>();

/** One report of `deviceId` at `atMs` with `n` requests around `ms`, through ingest's writer. */
async function report(deviceId: string, atMs: number, ms: number, o: { n?: number; errors?: number } = {}): Promise<void> {
  const seq = (seqs.get(deviceId) ?? 0) + 1;
  seqs.set(deviceId, seq);
  const latency = createLatencyHistogram();
  for (let i = 0; i < (o.n ?? 10); i++) recordLatency(latency, ms * (0.9 + 0.02 * i));
  const message: TelemetryMessage = {
    v: 1,
    deviceId,
    at: new Date(atMs).toISOString(),
    intervalS: 60,
    seq,
    inferences: o.n ?? 10,
    errors: o.errors ? { timeout: o.errors } : {},
    latency,
    queueDepth: 0,
    cpu: 0.1,
    rssBytes: 1e6,
    diskFreeBytes: 1e9,
    uptimeS: seq * 60,
    activeBundle: null,
  };
  await db.db.transaction((tx) => writeTelemetry(tx, [{ deviceId, message, cohorts: ['c'] }], new Date(atMs + 1000)));
}

const window = (endMs: number): StageWindow => {
  const windowS = Math.max(60, Math.ceil((endMs - Date.parse(STAGE_START)) / 1000));
  return { from: new Date(endMs - windowS * 1000), cuts: cutsFrom(T0 + 60_000, ['d1', 'd2', 'd3', 'd4']), end: new Date(endMs) };
};

/** Every device's latency from the same minute. */
const cutsFrom = (minute: number, ids: string[]) => new Map(ids.map((id) => [id, minute]));

/** What a gate reads from the rollups: the sums, and each device's merged latency (counts, min, max, p95). */
function seen(r: StageRollups, ids: string[]) {
  const latency = (id: string) => {
    const h = r.latencyOf(id);
    return h && { counts: h.counts, count: h.count, minMs: h.minMs, maxMs: h.maxMs };
  };
  return { inferences: r.inferences, errors: r.errors, latency: Object.fromEntries(ids.map((id) => [id, latency(id)])), worst: worstLatency(ids, r) };
}

async function same(aggregate: StageAggregate, ids: string[], endMs: number, what: string) {
  const w = window(endMs);
  assert.equal(aggregate.fits(w), true, `${what}: the aggregate answers`);
  const expected = seen(await readStageRollups(db.db, ids, w), ids);
  const got = seen(await readStageRollups(db.db, ids, w, aggregate), ids);
  assert.deepEqual(got, expected, what);
  return got;
}

test('tick after tick, the aggregate answers what one read of the whole stage answers; a late report for a held minute moves the verdict', async () => {
  const ids = ['d1', 'd2', 'd3'];
  const aggregate = new StageAggregate('test', STAGE_START);
  // Before the stage (12:00, the error rate's first bucket) and six minutes since, every device each minute; d2 a little slower.
  for (let m = 0; m < 7; m++) for (const [i, id] of ids.entries()) await report(id, T0 + m * 60_000 + 5_000 + i * 1000, id === 'd2' ? 6 : 4, { errors: m % 2 });
  let worst = (await same(aggregate, ids, T0 + 6 * 60_000 + 30_000, 'first tick (minutes 12:00–12:04 sealed)')).worst;
  assert.equal(worst?.id, 'd2');
  // Later ticks: new minutes seal, the current one fills.
  for (let m = 7; m < 9; m++) {
    for (const [i, id] of ids.entries()) await report(id, T0 + m * 60_000 + 5_000 + i * 1000, id === 'd2' ? 6 : 4);
    await same(aggregate, ids, T0 + m * 60_000 + 40_000, `tick at minute ${m}`);
  }
  // d3's store-and-forward backlog lands in 12:02, a minute the aggregate sealed and holds: slow requests and errors.
  await report('d3', T0 + 2 * 60_000 + 50_000, 40, { n: 30, errors: 5 });
  worst = (await same(aggregate, ids, T0 + 8 * 60_000 + 50_000, 'after a late report in a held minute')).worst;
  assert.equal(worst?.id, 'd3', 'the late slow report makes d3 the worst device');
  // A device joins the stage (a late joiner of the cohort): its held minutes are read for it alone.
  await report('d4', T0 + 3 * 60_000 + 7_000, 5);
  await report('d4', T0 + 8 * 60_000 + 7_000, 5);
  await same(aggregate, [...ids, 'd4'], T0 + 8 * 60_000 + 55_000, 'a device that joined');
  // A device that left (superseded) is no longer counted.
  await same(aggregate, ['d1', 'd3'], T0 + 8 * 60_000 + 56_000, 'a device that left');
  // Retention drops the stage's first minutes.
  await db.db.delete(telemetryRollups).where(lt(telemetryRollups.bucketStart, new Date(T0 + 2 * 60_000).toISOString()));
  await same(aggregate, ids, T0 + 8 * 60_000 + 57_000, 'after retention dropped two minutes');
  // Time going backwards (a tick for an earlier `now`) is not answered from minutes held past it.
  assert.equal(aggregate.fits(window(T0 + 5 * 60_000)), false);
});

test('a second read for the same end answers from what the first read (before the write lock) held', async () => {
  const ids = ['e1', 'e2'];
  const start = T0 + 3_600_000;
  const aggregate = new StageAggregate('snapshot', new Date(start + 20_000).toISOString());
  for (let m = 0; m < 4; m++) for (const id of ids) await report(id, start + m * 60_000 + 5_000, 4);
  const w: StageWindow = { from: new Date(start), cuts: cutsFrom(start + 60_000, ids), end: new Date(start + 3 * 60_000 + 30_000) };
  const first = seen(await aggregate.read(db.db, ids, w), ids);
  await report('e1', start + 3 * 60_000 + 10_000, 50);
  assert.deepEqual(seen(await aggregate.read(db.db, ids, w), ids), first);
  // A later end reads what came meanwhile.
  const later = seen(await aggregate.read(db.db, ids, { ...w, end: new Date(start + 3 * 60_000 + 31_000) }), ids);
  assert.equal(later.worst?.id, 'e1');
});

test('past its memory bound the aggregate lets go of what it holds, and the one read answers the stage from then on', async () => {
  const ids = ['f1', 'f2'];
  const start = T0 + 2 * 3_600_000;
  // Room for 3 held minutes of 1,024 device slots (20 B each), not 4.
  const aggregate = new StageAggregate('bounded', new Date(start + 20_000).toISOString(), 3 * 1024 * 20 + 1);
  for (let m = 0; m < 6; m++) for (const id of ids) await report(id, start + m * 60_000 + 5_000, 4);
  const w = (endMs: number): StageWindow => ({ from: new Date(start), cuts: cutsFrom(start + 60_000, ids), end: new Date(endMs) });
  await aggregate.read(db.db, ids, w(start + 2 * 60_000 + 30_000)); // holds 12:00 (error rate's minute before) and 12:01
  assert.equal(aggregate.fits(w(start + 3 * 60_000 + 30_000)), true, 'within the bound');
  await aggregate.read(db.db, ids, w(start + 5 * 60_000 + 30_000)); // seals up to 5 minutes
  assert.ok(aggregate.heldBytes() > 3 * 1024 * 20, `holds ${aggregate.heldBytes()} B`);
  assert.equal(aggregate.fits(w(start + 5 * 60_000 + 40_000)), false, 'past the bound it no longer answers');
  assert.equal(aggregate.heldBytes(), 0, 'and holds nothing');
  assert.equal(aggregate.fits(w(start + 6 * 60_000)), false, 'nor later in the stage');
  // The gates still get the stage's answer, from the one read.
  const one = seen(await readStageRollups(db.db, ids, w(start + 5 * 60_000 + 40_000)), ids);
  assert.deepEqual(seen(await readStageRollups(db.db, ids, w(start + 5 * 60_000 + 40_000), aggregate), ids), one);
});

test("each device's latency from its own cut: one switched later, one not measured yet, one whose cut appears between ticks", async () => {
  const ids = ['g1', 'g2', 'g3'];
  const start = T0 + 3 * 3_600_000;
  const aggregate = new StageAggregate('cuts', new Date(start + 20_000).toISOString());
  // Fast minutes before each device's switch, slow ones after: g1 from 12:01, g2 from 12:03, g3 from 12:04.
  const switchMinute: Record<string, number> = { g1: 1, g2: 3, g3: 4 };
  for (let m = 0; m < 7; m++) for (const id of ids) await report(id, start + m * 60_000 + 5_000, m >= switchMinute[id] ? 50 : 4);
  const w = (endMs: number, cuts: Map<string, number>): StageWindow => ({ from: new Date(start), cuts, end: new Date(endMs) });
  const check = async (endMs: number, cuts: Map<string, number>, what: string) => {
    const expected = seen(await readStageRollups(db.db, ids, w(endMs, cuts)), ids);
    const got = seen(await readStageRollups(db.db, ids, w(endMs, cuts), aggregate), ids);
    assert.deepEqual(got, expected, what);
    return got;
  };
  const minute = (m: number) => start + m * 60_000;
  // g3 not measured yet (no cut): only g1 and g2, each only on its slow minutes.
  let got = await check(minute(5) + 30_000, new Map([['g1', minute(1)], ['g2', minute(3)]]), 'g1 and g2 from their own cuts');
  assert.equal(got.latency.g3, null);
  assert.equal(got.latency.g2?.count, 3 * 10, 'g2: 12:03, 12:04 and 12:05');
  assert.ok(got.latency.g2!.minMs! > 40, "none of g2's fast minutes");
  // A tick later g3 has its cut: read again from it, the sealed minutes included.
  got = await check(minute(6) + 30_000, new Map([['g1', minute(1)], ['g2', minute(3)], ['g3', minute(4)]]), 'g3 from its cut');
  assert.equal(got.latency.g3?.count, 3 * 10, 'g3: 12:04, 12:05 and 12:06');
  assert.ok(got.latency.g3!.minMs! > 40);
  // A cut that moves (the device went back and switched again) is read again from the new one.
  got = await check(minute(6) + 31_000, new Map([['g1', minute(5)], ['g2', minute(3)], ['g3', minute(4)]]), 'g1 from a later cut');
  assert.equal(got.latency.g1?.count, 2 * 10);
});
