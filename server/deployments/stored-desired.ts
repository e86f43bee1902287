// The desired-state messages as stored: each device's signed manifest with the current key list. Read
// by DesiredState.publish() (repeatable publishing) and, at start, to seed the embedded broker's
// retained store directly before it accepts connections (a restarted fleet finds its desired state at
// once instead of after a republish of the whole fleet through MQTT).
import { sql } from 'drizzle-orm';
import type { DesiredMessage } from '../../protocol/messages/desired.ts';
import type { Db } from '../db/client.ts';
import { inIds } from '../db/in-ids.ts';
import { deviceDesired } from '../db/schema.ts';
import { currentKeyList } from '../keys/key-service.ts';

export async function storedDesiredMessages(db: Db, deviceIds?: string[]): Promise<Array<{ deviceId: string; message: DesiredMessage }>> {
  const list = await currentKeyList(db);
  if (!list) return [];
  const rows = await db.select({ deviceId: deviceDesired.deviceId, manifest: deviceDesired.manifest }).from(deviceDesired).where(deviceIds ? inIds(deviceDesired.deviceId, deviceIds) : undefined);
  return rows.map((row) => ({ deviceId: row.deviceId, message: { v: 1, keylist: list as DesiredMessage['keylist'], manifest: row.manifest as DesiredMessage['manifest'] } }));
}

/**
 * Every device's desired message, serialized: the same bytes as JSON.stringify of storedDesiredMessages'
 * messages, built without it. The key list (the same for every device, and most of each message) is
 * serialized once, and each manifest is spliced in as the JSON text it is stored as, never parsed.
 */
export async function storedDesiredPayloads(db: Db): Promise<Array<{ deviceId: string; payload: string }>> {
  const list = await currentKeyList(db);
  if (!list) return [];
  const head = `{"v":1,"keylist":${JSON.stringify(list)},"manifest":`;
  const rows = await db.select({ deviceId: deviceDesired.deviceId, manifest: sql<string>`${deviceDesired.manifest}` }).from(deviceDesired);
  return rows.map((row) => ({ deviceId: row.deviceId, payload: `${head}${row.manifest}}` }));
}
