// The desired-state messages as stored: each device's signed manifest with the current key list,
// serialized without parsing the manifest. Read by DesiredState.publish() (repeatable publishing) and,
// at start, to seed the embedded broker's retained store directly before it accepts connections (a
// restarted fleet finds its desired state at once instead of after a republish of the whole fleet).
import { and, eq, ne, sql } from 'drizzle-orm';
import type { SignedEnvelope } from '../../firmware-bundles/envelope.ts';
import type { KeyList } from '../../firmware-bundles/key-list.ts';
import type { Db } from '../db/client.ts';
import { inIds } from '../db/in-ids.ts';
import { deviceDesired, devices } from '../db/schema.ts';
import { currentKeyList } from '../keys/key-service.ts';
import type { DesiredPayload } from './desired-publisher.ts';

/** Everything of a desired message before its manifest: `{ v: 1, keylist, manifest }` as JSON.stringify prints it. */
export function desiredMessageHead(keylist: SignedEnvelope<KeyList>): string {
  return `{"v":1,"keylist":${JSON.stringify(keylist)},"manifest":`;
}

/**
 * The devices' desired messages (all when `deviceIds` is omitted; revoked devices never), serialized: the same bytes as
 * JSON.stringify({ v: 1, keylist, manifest }). The key list (the same for every device, and most of
 * each message) is serialized once, and each manifest is spliced in as the JSON text it is stored as.
 */
export async function storedDesiredPayloads(db: Db, deviceIds?: string[]): Promise<DesiredPayload[]> {
  const list = await currentKeyList(db);
  if (!list) return [];
  const head = desiredMessageHead(list);
  const rows = await db
    .select({ deviceId: deviceDesired.deviceId, counter: deviceDesired.counter, manifest: sql<string>`${deviceDesired.manifest}` })
    .from(deviceDesired)
    // A revoked device can never connect again: its desired state is neither seeded nor republished.
    .innerJoin(devices, eq(devices.id, deviceDesired.deviceId))
    .where(and(ne(devices.status, 'revoked'), deviceIds ? inIds(deviceDesired.deviceId, deviceIds) : undefined));
  return rows.map((row) => ({ deviceId: row.deviceId, counter: row.counter, payload: `${head}${row.manifest}}` }));
}
