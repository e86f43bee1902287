// Device presence and reported update state, with their events. These run per MQTT message (a fleet
// reconnecting or updating sends thousands), so each is one batch on one connection: an INSERT … SELECT
// that writes the event only when the stored value differs, then the UPDATE. A batch is atomic, so two
// messages for one device never both see the old value.
import { and, eq, sql } from 'drizzle-orm';
import type { ReportedMessage } from '../../protocol/messages/reported.ts';
import type { Db } from '../db/client.ts';
import { devices } from '../db/schema.ts';
import { insertEventsFrom } from './event-log.ts';
import type { EventData } from './event-types.ts';

export async function writePresence(db: Db, id: string, online: boolean, at = new Date()): Promise<void> {
  const type = online ? 'device.online' : 'device.offline';
  await db.batch([
    insertEventsFrom(db, sql`SELECT 'device', ${type}, ${devices.id}, '{}' FROM ${devices} WHERE ${and(eq(devices.id, id), sql`${devices.online} IS NOT ${online ? 1 : 0}`)}`),
    db.update(devices).set({ online, lastSeen: at.toISOString() }).where(eq(devices.id, id)),
  ]);
}

type Reported = Pick<ReportedMessage, 'state'> & Partial<Pick<ReportedMessage, 'active' | 'desired' | 'lastError'>>;

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

/** Stores a device's reported message; a `device.update` event when its state, active or desired bundle changed. */
export async function writeReported(db: Db, id: string, reported: Reported): Promise<void> {
  const data = updateData(reported);
  const changed = sql`(${devices.updateState} IS NOT ${reported.state}
    OR json_extract(${devices.reported}, '$.active.bundleId') IS NOT ${data.bundleId ?? null}
    OR json_extract(${devices.reported}, '$.desired.bundleId') IS NOT ${data.desiredBundleId ?? null})`;
  await db.batch([
    insertEventsFrom(db, sql`SELECT 'device', 'device.update', ${devices.id}, ${JSON.stringify(data)} FROM ${devices} WHERE ${and(eq(devices.id, id), changed)}`),
    db.update(devices).set({ reported, updateState: reported.state, lastSeen: new Date().toISOString() }).where(eq(devices.id, id)),
  ]);
}
