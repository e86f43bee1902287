// What changed in the per-device telemetry rollups of a minute, told by one row: ingest (telemetry-writer.ts)
// adds every new report to its device's rollup and to the fleet's rollup of the same minute in one
// transaction, so the fleet row's reports count (and updated_at) moves whenever any device row of that minute
// does, and retention deletes the minute's rows of every scope together. A reader that keeps device rollups
// between reads (the rollout stage aggregate, the fleet page's window aggregate) compares a minute's
// fingerprint with the one it saw when it read that minute, on any replica, whoever did the ingest; a minute
// without a fleet row holds no device rows. Read the fingerprints before the device rows: a report committed
// in between then shows as a changed fingerprint on the next read, never as a missed one.
import { sql } from 'drizzle-orm';
import type { Tx } from '../db/client.ts';
import { FLEET_KEY } from './stats-writer.ts';

export interface FleetMinute {
  /** Reports in the minute, fleet-wide: an upper bound of its device rows. */
  reports: number;
  /** Equal as long as no device rollup of the minute changed. */
  fingerprint: string;
}

/** The fleet rollup of each minute in [fromMs, toMs) (toMs omitted: no upper bound), by minute start in ms. */
export async function fleetMinutes(tx: Tx, fromMs: number, toMs?: number): Promise<Map<number, FleetMinute>> {
  const rows = await tx.all<{ bucket: string; reports: number; updated_at: string }>(sql`
    select bucket_start as bucket, reports, updated_at from telemetry_rollups
    where scope = 'fleet' and key = ${FLEET_KEY} and bucket_start >= ${new Date(fromMs).toISOString()}
      ${toMs === undefined ? sql`` : sql`and bucket_start < ${new Date(toMs).toISOString()}`}`);
  return new Map(rows.map((r) => [Date.parse(r.bucket), { reports: Number(r.reports), fingerprint: `${r.reports}|${r.updated_at}` }]));
}
