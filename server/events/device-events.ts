// Device presence and reported update state, with their events: an INSERT … SELECT that writes the event
// only when the stored value differs, then the UPDATE, in one transaction. The MQTT path batches many
// devices into one transaction (server/devices/device-state-writer.ts).
import { and, inArray, sql } from 'drizzle-orm';
import type { ReportedMessage } from '../../protocol/messages/reported.ts';
import type { Db, Tx } from '../db/client.ts';
import { devices } from '../db/schema.ts';
import { recordServingInTx, withoutStaleError } from '../history/serving-writer.ts';
import { runStatement, statement } from '../db/tx-statement.ts';
import { insertEventsFrom } from './event-log.ts';
import type { EventData } from './event-types.ts';

/** Presence of several devices, with an event for each whose stored value changes (in the caller's transaction). */
/** `lastSeen` '' leaves it as is (presence learnt from a replayed retained `status`, no sign of life). */
export async function writePresenceInTx(tx: Tx, ids: string[], online: boolean, lastSeen: string): Promise<void> {
  const type = online ? 'device.online' : 'device.offline';
  await insertEventsFrom(tx, sql`SELECT 'device', ${type}, ${devices.id}, '{}' FROM ${devices} WHERE ${and(inArray(devices.id, ids), sql`${devices.online} IS NOT ${online ? 1 : 0}`)}`);
  await tx.update(devices).set(lastSeen ? { online, lastSeen } : { online }).where(inArray(devices.id, ids));
}

/** Devices that sent something (telemetry, stats): `last_seen` moves forward, nothing else changes, no event. */
export async function writeSeenInTx(tx: Tx, ids: string[], lastSeen: string): Promise<void> {
  await tx.update(devices).set({ lastSeen }).where(and(inArray(devices.id, ids), sql`(${devices.lastSeen} IS NULL OR ${devices.lastSeen} < ${lastSeen})`));
}

export type Reported = Pick<ReportedMessage, 'state'> & Partial<Pick<ReportedMessage, 'active' | 'desired' | 'lastError'>>;

/** The `device.update` data of a reported message. */
export function updateData(reported: Reported): EventData['device.update'] {
  const data: EventData['device.update'] = { state: reported.state };
  if (reported.active) {
    data.bundleId = reported.active.bundleId;
    data.modelVersion = `${reported.active.model.name}@${reported.active.model.version}`;
  }
  if (reported.desired) data.desiredBundleId = reported.desired.bundleId;
  if (reported.lastError && (reported.state === 'failed' || reported.state === 'rolled_back')) data.error = { code: reported.lastError.code, message: reported.lastError.message };
  return data;
}

// A device's `reported` message costs these statements for every message the fleet sends (a fan-out to
// 10,000 devices brings 10,000 within seconds), so they are fixed texts prepared once per connection and run
// on the transaction's libsql connection (tx-statement.ts), not built by drizzle per message.
const UPDATE_EVENT = statement(`INSERT INTO events (kind, type, subject, data)
  SELECT 'device', 'device.update', id, ? FROM devices WHERE id = ?
    AND (update_state IS NOT ? OR json_extract(reported, '$.active.bundleId') IS NOT ? OR json_extract(reported, '$.desired.bundleId') IS NOT ?)`);
const STORE_REPORTED = statement('UPDATE devices SET reported = ?, update_state = ? WHERE id = ?');

/** Stores a device's reported message; a `device.update` event when its state, active or desired bundle changed (in the caller's transaction). */
export async function writeReportedInTx(tx: Tx, id: string, reported: Reported, at: string): Promise<void> {
  const data = updateData(reported);
  await runStatement(tx, UPDATE_EVENT, [JSON.stringify(data), id, reported.state, data.bundleId ?? null, data.desiredBundleId ?? null]);
  await recordServingInTx(tx, id, reported, at);
  // lastSeen is the writer's to move (writeSeenInTx): a replayed retained report is no sign of life.
  // The document as JSON text, as drizzle stores a `json` text column.
  await runStatement(tx, STORE_REPORTED, [JSON.stringify(withoutStaleError(reported)), reported.state, id]);
}

export async function writeReported(db: Db, id: string, reported: Reported, at = new Date()): Promise<void> {
  await db.transaction(async (tx) => {
    await writeReportedInTx(tx, id, reported, at.toISOString());
    await writeSeenInTx(tx, [id], at.toISOString());
  });
}
