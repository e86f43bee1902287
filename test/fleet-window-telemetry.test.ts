// The fleet page's window aggregate (server/fleet/fleet-telemetry.ts) on a libsql file, reading through one
// connection while another (a second control plane's) writes through ingest's own writer: every answer equals
// the per-device computation over the rollup rows, request after request, whichever minutes it kept; a request
// with nothing written since reads no minute again, a late report makes it read that minute alone; retention,
// windows of other lengths and a memory bound too small to keep anything give the same answers.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { lt } from 'drizzle-orm';
import { openDatabase } from '../server/db/client.ts';
import { telemetryRollups } from '../server/db/schema.ts';
import { FleetWindowAggregate } from '../server/fleet/fleet-telemetry.ts';
import { fleetMinutes } from '../server/ingest/minute-fingerprints.ts';
import { referenceTelemetry, seeded, writeRandomTelemetry } from './helpers/window-telemetry.ts';

const MINUTE = 60_000;
const T0 = Date.parse('2026-01-01T12:00:00Z');
const ids = Array.from({ length: 40 }, (_, i) => `dev_window${String(i).padStart(3, '0')}`);
const random = seeded(11);
const seqs = new Map<string, number>();

let dir: string;
let reader: Awaited<ReturnType<typeof openDatabase>>;
let writer: Awaited<ReturnType<typeof openDatabase>>;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'flotilla-fleet-window-'));
  const url = `file:${path.join(dir, 'db.sqlite')}`;
  reader = await openDatabase(url);
  writer = await openDatabase(url);
  // 20 minutes of random reports, in a few transactions.
  for (let batch = 0; batch < 3; batch++) await writeRandomTelemetry(writer.db, { ids, random, fromMs: T0, toMs: T0 + 20 * MINUTE, perDevice: 4, seqs });
});
after(async () => {
  reader.client.close();
  writer.client.close();
  await rm(dir, { recursive: true, force: true });
});

/** The aggregate's answer over the minutes from `fromMs` on against the reference, device by device. */
async function assertAnswer(a: FleetWindowAggregate, fromMs: number): Promise<void> {
  const got = await a.read(reader.db, fromMs);
  const from = new Date(fromMs).toISOString();
  let present = 0;
  for (const id of ids) {
    const want = await referenceTelemetry(reader.db, id, from);
    assert.deepEqual(got.get(id) ?? null, want, id);
    if (want) present++;
  }
  assert.equal(got.size, present, 'no device without rollups in the window');
  assert.ok(present > 0, 'some device has telemetry in the window');
}

test('repeated requests: the same answers; nothing written since, no minute read again; a late report, its minute alone', async () => {
  const a = new FleetWindowAggregate();
  const from = T0 + 5 * MINUTE;
  await assertAnswer(a, from);
  assert.equal(a.lastRead, 15, 'the first request reads each minute of the window');
  await assertAnswer(a, from);
  assert.equal(a.lastRead, 0);
  // One late report (store and forward) into a minute the aggregate holds, from the other connection.
  await writeRandomTelemetry(writer.db, { ids: ids.slice(0, 1), random, fromMs: T0 + 9 * MINUTE, toMs: T0 + 10 * MINUTE, perDevice: 1, seqs });
  await assertAnswer(a, from);
  assert.equal(a.lastRead, 1);
  // Many, across the window and past its end.
  await writeRandomTelemetry(writer.db, { ids, random, fromMs: T0 + 3 * MINUTE, toMs: T0 + 22 * MINUTE, perDevice: 2, seqs });
  await assertAnswer(a, from);
  await assertAnswer(a, from);
  assert.equal(a.lastRead, 0);
});

test('windows of other lengths, retention, and a memory bound that keeps nothing: the same answers', async () => {
  const a = new FleetWindowAggregate();
  for (const minutes of [5, 15, 2, 21, 15]) await assertAnswer(a, T0 + (21 - minutes) * MINUTE);
  // Retention drops the first minutes (every scope): the aggregate must not answer from what it held of them.
  await assertAnswer(a, T0);
  await writer.db.delete(telemetryRollups).where(lt(telemetryRollups.bucketStart, new Date(T0 + 4 * MINUTE).toISOString()));
  await assertAnswer(a, T0);

  const tiny = new FleetWindowAggregate(1);
  const minutes = (await fleetMinutes(reader.db, T0 + 6 * MINUTE)).size;
  for (let i = 0; i < 3; i++) {
    await assertAnswer(tiny, T0 + 6 * MINUTE);
    assert.equal(tiny.lastRead, minutes, 'nothing kept: every minute read again');
    assert.equal(tiny.heldBytes(), 0);
  }
});
