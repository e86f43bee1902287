// Event log cost on the hot path: storing a device's `reported` message with its `device.update` event
// (one db.batch: INSERT … SELECT of the event when the state changed, then the UPDATE) against the plain
// UPDATE it replaced, measured in the same run on the same database file.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import type { ReportedMessage } from '../protocol/messages/reported.ts';
import { openDatabase } from '../server/db/client.ts';
import { devices, events } from '../server/db/schema.ts';
import { writeReported } from '../server/events/device-events.ts';
import { printTable, type BenchRow } from './lib.ts';

const DEVICES = 1000;
const MESSAGES = 4000;

function reported(i: number, state: ReportedMessage['state']): ReportedMessage {
  const at = new Date().toISOString();
  return {
    v: 1,
    at,
    agentVersion: '0.1.0',
    state,
    active: { bundleId: 'bnd_a', bundleName: 'b', model: { name: 'm', version: 1 }, counter: i, modelSha256: 'x'.repeat(64), activatedAt: at },
    desired: { bundleId: 'bnd_a', counter: i },
    lastError: null,
    transitions: [],
  };
}

export async function runEventsBench(): Promise<BenchRow[]> {
  const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-bench-events-'));
  const { db, client } = await openDatabase(`file:${path.join(dir, 'db.sqlite')}`);
  try {
    const ids = Array.from({ length: DEVICES }, (_, i) => `dev_${i}`);
    await db.insert(devices).values(ids.map((id) => ({ id, status: 'approved' as const, labels: {}, facts: {}, credentialHash: 'x' })));
    const states: Array<ReportedMessage['state']> = ['downloading', 'staging', 'active', 'probation'];
    const rate = async (fn: (i: number) => Promise<unknown>) => {
      const t = performance.now();
      for (let i = 0; i < MESSAGES; i++) await fn(i);
      return MESSAGES / ((performance.now() - t) / 1000);
    };
    // Every message changes the device's state (the worst case: one event each).
    const plain = await rate((i) => {
      const r = reported(i, states[Math.floor(i / DEVICES) % states.length]);
      return db.update(devices).set({ reported: r, updateState: r.state, lastSeen: new Date().toISOString() }).where(eq(devices.id, ids[i % DEVICES]));
    });
    const changed = await rate((i) => writeReported(db, ids[i % DEVICES], reported(i, states[(Math.floor(i / DEVICES) + 1) % states.length])));
    const written = (await db.select({ id: events.id }).from(events)).length;
    // Repeats of the same state (a re-sent retained message): no event.
    const unchanged = await rate((i) => writeReported(db, ids[i % DEVICES], reported(i, states[(Math.floor((MESSAGES - 1) / DEVICES) + 1) % states.length])));
    const rows: BenchRow[] = [
      { benchmark: 'reported + device.update event (state changed)', value: changed, unit: 'msg/s', baseline: 'plain UPDATE (before events)', baselineValue: plain, ratio: changed / plain, note: `${written} events for ${MESSAGES} messages` },
      { benchmark: 'reported, state unchanged (no event)', value: unchanged, unit: 'msg/s', baseline: 'plain UPDATE (before events)', baselineValue: plain, ratio: unchanged / plain },
    ];
    printTable(`events: reported messages into ${DEVICES} devices, ${MESSAGES} messages`, rows);
    return rows;
  } finally {
    client.close();
    await rm(dir, { recursive: true, force: true });
  }
}
