import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, mock, test } from 'node:test';
import { asc, eq, inArray } from 'drizzle-orm';
import pino from 'pino';
import { type Db, openDatabase } from '../db/client.ts';
import { devices, events, servingHistory } from '../db/schema.ts';
import { createEnrollToken, enrollDevice } from '../enroll/enroll-service.ts';
import { DeviceStateWriter } from './device-state-writer.ts';

const FACTS = { arch: 'arm64', cpus: 4, memoryBytes: 1e9, os: 'linux', agentVersion: '0.1.0' };

describe('DeviceStateWriter', () => {
  let dir: string;
  let db: Db;
  let close: () => void;
  const ids: string[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-state-writer-'));
    const opened = await openDatabase(`file:${path.join(dir, 'db.sqlite')}`);
    db = opened.db;
    close = () => opened.client.close();
    const token = await createEnrollToken(db, { labels: {}, autoApprove: true, actor: 'test' });
    for (let i = 0; i < 1200; i++) ids.push((await enrollDevice(db, { token: token.token, facts: FACTS })).deviceId);
  });
  after(async () => {
    close();
    await rm(dir, { recursive: true, force: true });
  });

  const rows = () => db.select({ id: devices.id, online: devices.online, lastSeen: devices.lastSeen, updateState: devices.updateState }).from(devices).where(inArray(devices.id, ids));

  test('a burst of connects, disconnects and reports is coalesced per device into one transaction', async (t) => {
    const writer = new DeviceStateWriter({ db, logger: pino({ level: 'silent' }), flushMs: 60_000 });
    const tx = t.mock.method(db, 'transaction');
    for (const id of ids) writer.presence(id, true);
    for (const id of ids.slice(0, 100)) writer.presence(id, false); // these went away again
    writer.reported(ids[5], { state: 'active' });
    writer.presence(ids[5], true);
    await writer.stop(); // flushes without waiting for the timer
    assert.equal(tx.mock.callCount(), 1);
    const byId = new Map((await rows()).map((r) => [r.id, r]));
    assert.ok(ids.slice(100).every((id) => byId.get(id)!.online === true && byId.get(id)!.lastSeen));
    assert.ok(ids.slice(0, 100).every((id) => id === ids[5] || byId.get(id)!.online === false), 'the newest event per device wins');
    assert.deepEqual({ online: byId.get(ids[5])!.online, updateState: byId.get(ids[5])!.updateState }, { online: true, updateState: 'active' });
  });

  test('a write that fails is kept and retried, under any newer event', async () => {
    const writer = new DeviceStateWriter({ db, logger: pino({ level: 'silent' }), flushMs: 20 });
    const failOnce = mock.method(db, 'transaction', async () => {
      failOnce.mock.restore();
      throw new Error('SQLITE_BUSY');
    });
    writer.presence(ids[0], true);
    writer.presence(ids[1], true);
    await writer.flush(); // fails, keeps both
    writer.presence(ids[1], false);
    for (let i = 0; i < 200 && (await rows()).find((r) => r.id === ids[0])!.online !== true; i++) await new Promise((r) => setTimeout(r, 25));
    await writer.stop();
    const byId = new Map((await rows()).map((r) => [r.id, r]));
    assert.equal(byId.get(ids[0])!.online, true);
    assert.equal(byId.get(ids[1])!.online, false);
  });

  test('every reported state change in one flush keeps its device.update event, in order; presence events only on change', async () => {
    const writer = new DeviceStateWriter({ db, logger: pino({ level: 'silent' }), flushMs: 60_000 });
    const id = ids[7];
    const before = (await db.select({ id: events.id }).from(events)).length;
    writer.presence(id, true); // offline since the first test
    writer.presence(id, true);
    for (const state of ['downloading', 'verifying', 'staging', 'active'] as const) writer.reported(id, { state });
    writer.reported(id, { state: 'active' }); // unchanged: no event
    await writer.stop();
    const mine = (await db.select().from(events).where(eq(events.subject, id)).orderBy(asc(events.id))).slice(-5);
    assert.deepEqual(
      mine.map((e) => (e.type === 'device.update' ? `update:${(e.data as { state: string }).state}` : e.type)),
      ['device.online', 'update:downloading', 'update:verifying', 'update:staging', 'update:active'],
    );
    assert.equal((await db.select({ id: events.id }).from(events)).length, before + 5);
  });

  test('telemetry and stats move lastSeen in one statement per flush, forward only, without events', async (t) => {
    const writer = new DeviceStateWriter({ db, logger: pino({ level: 'silent' }), flushMs: 60_000 });
    const some = ids.slice(200, 1200);
    const eventsBefore = (await db.select({ id: events.id }).from(events)).length;
    const tx = t.mock.method(db, 'transaction');
    const at = new Date(Date.now() + 3600_000); // later than anything written so far
    for (let k = 0; k < 5; k++) for (const id of some) writer.seen(id, new Date(at.getTime() + k));
    await writer.stop();
    assert.equal(tx.mock.callCount(), 1, '5,000 messages, one transaction');
    const byId = new Map((await rows()).map((r) => [r.id, r]));
    assert.ok(some.every((id) => byId.get(id)!.lastSeen === new Date(at.getTime() + 4).toISOString()));
    assert.equal((await db.select({ id: events.id }).from(events)).length, eventsBefore, 'no event for being seen');
    // An older message (e.g. a delayed window) does not move it back.
    writer.seen(some[0], new Date(at.getTime() - 60_000));
    await writer.stop();
    assert.equal((await rows()).find((r) => r.id === some[0])!.lastSeen, new Date(at.getTime() + 4).toISOString());
  });

  test('a failure\'s lastError is cleared once a later update succeeds, and kept on the serving interval', async () => {
    const writer = new DeviceStateWriter({ db, logger: pino({ level: 'silent' }), flushMs: 60_000 });
    const id = ids[9];
    const bundle = (b: string, version: number, counter: number, activatedAt: string) => ({ bundleId: b, bundleName: 'demo', model: { name: 'demo', version }, counter, modelSha256: 'x', activatedAt });
    const v1 = bundle('bnd_v1', 1, 1, '2026-01-01T00:00:00.000Z');
    const error = { code: 'SMOKE_TEST_FAILED', message: 'output 0 off by 0.5', at: '2026-01-01T01:00:00.000Z', counter: 2 };
    writer.reported(id, { state: 'active', active: v1, desired: { bundleId: 'bnd_v1', counter: 1 }, lastError: null });
    writer.reported(id, { state: 'failed', active: v1, desired: { bundleId: 'bnd_v2', counter: 2 }, lastError: error });
    await writer.stop();
    const stored = async () => (await db.select({ reported: devices.reported }).from(devices).where(eq(devices.id, id)))[0].reported as { lastError: unknown };
    assert.deepEqual((await stored()).lastError, error, 'the failure is the device state while v1 still serves');
    // The agent keeps lastError in every later report; the server stops showing it once v3 activated after it.
    writer.reported(id, { state: 'active', active: bundle('bnd_v3', 3, 3, '2026-01-01T02:00:00.000Z'), desired: { bundleId: 'bnd_v3', counter: 3 }, lastError: error });
    await writer.stop();
    assert.equal((await stored()).lastError, null);
    const history = await db.select().from(servingHistory).where(eq(servingHistory.deviceId, id)).orderBy(asc(servingHistory.id));
    assert.deepEqual(
      history.map((h) => ({ bundle: h.bundleId, open: h.endedAt === null, failure: h.lastFailure?.code ?? null })),
      [
        { bundle: 'bnd_v1', open: false, failure: 'SMOKE_TEST_FAILED' },
        { bundle: 'bnd_v3', open: true, failure: null },
      ],
    );
    assert.equal(history[0].lastFailure!.bundleId, 'bnd_v2');
  });

  test('replays of retained reported and status messages update state but not lastSeen', async () => {
    const writer = new DeviceStateWriter({ db, logger: pino({ level: 'silent' }), flushMs: 60_000 });
    const [a, b] = [ids[11], ids[12]];
    const old = new Date('2026-01-01T00:00:00.000Z');
    writer.presence(a, false, old);
    writer.presence(b, false, old);
    await writer.stop();
    // The server (re)subscribes and the broker replays what the devices left retained: not a sign of life.
    writer.reported(a, { state: 'active' }, new Date(), { replay: true });
    writer.presence(b, true, new Date(), { replay: true });
    await writer.stop();
    const byId = new Map((await rows()).map((r) => [r.id, r]));
    assert.deepEqual([byId.get(a)!.updateState, byId.get(a)!.lastSeen], ['active', old.toISOString()]);
    assert.deepEqual([byId.get(b)!.online, byId.get(b)!.lastSeen], [true, old.toISOString()]);
    // A live report moves it.
    const now = new Date();
    writer.reported(a, { state: 'active' }, now);
    await writer.stop();
    assert.equal((await rows()).find((r) => r.id === a)!.lastSeen, now.toISOString());
  });
  test('presence and reported settle only once their flush committed (the bus acknowledges then), a failed write after its retry', async () => {
    const writer = new DeviceStateWriter({ db, logger: pino({ level: 'silent' }), flushMs: 60_000 });
    let settled = 0;
    const onlineAt = writer.presence(ids[10], true).then(async () => {
      settled++;
      return (await rows()).find((r) => r.id === ids[10])!.online; // what the database holds at that moment
    });
    const reportedAt = writer.reported(ids[11], { state: 'active' }).then(async () => {
      settled++;
      return (await rows()).find((r) => r.id === ids[11])!.updateState;
    });
    // The flush is a minute away: nothing may settle before it.
    await new Promise((r) => setImmediate(r));
    await rows();
    assert.equal(settled, 0, 'not settled before the write');
    // The first write fails: still not settled; the retry commits and settles both.
    const failOnce = mock.method(db, 'transaction', async () => {
      failOnce.mock.restore();
      throw new Error('SQLITE_BUSY');
    });
    await writer.flush();
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, 0, 'a failed write settles nothing');
    await writer.stop();
    assert.equal(await onlineAt, true);
    assert.equal(await reportedAt, 'active');
  });

  test('a flush timer that fires while a long flush is still writing does not stop later events from being written', async () => {
    // Under load a flush can outlast flushMs: events merged meanwhile arm the timer, which fires into the
    // running flush. That flush writes them; the writer must still arm a timer for the events after it.
    const writer = new DeviceStateWriter({ db, logger: pino({ level: 'silent' }), flushMs: 10 });
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let held!: () => void;
    const holding = new Promise<void>((r) => (held = r));
    const [a, b, c] = [ids[20], ids[21], ids[22]];
    await db.update(devices).set({ online: true }).where(inArray(devices.id, [a, b, c]));
    // Another writer holds this process's write slot, so the writer's first flush waits behind it.
    const blocker = db.transaction(async () => {
      held();
      await gate;
    });
    await holding;
    const first = writer.presence(a, false); // its flush starts after 10 ms and waits for the slot
    await new Promise((r) => setTimeout(r, 50));
    const second = writer.presence(b, false); // arms the timer; it fires into the waiting flush
    await new Promise((r) => setTimeout(r, 50));
    open();
    await blocker;
    await Promise.all([first, second]);
    await new Promise((r) => setTimeout(r, 50)); // that flush has ended
    writer.presence(c, false); // after it: needs a timer of its own
    const deadline = Date.now() + 10_000;
    let row = (await rows()).find((r) => r.id === c)!;
    while (row.online !== false && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      row = (await rows()).find((r) => r.id === c)!;
    }
    await writer.stop();
    assert.equal(row.online, false, 'the event after the long flush was written by its timer, not only at stop()');
  });
});
