// The error-rate gate's numbers for a whole stage in one grouped query over the per-minute device
// telemetry rollups. A stage of 10,000 devices used to cost one full telemetry summary per device
// (device lookup, rollups, latest resources, refused windows) on every tick; the ids go in as one
// JSON parameter (json_each), so the statement does not depend on the stage size.
import { and, eq, gte, lt, sql } from 'drizzle-orm';
import type { Tx } from '../db/client.ts';
import { telemetryRollups } from '../db/schema.ts';
import { bucketStart } from '../ingest/buckets.ts';

/** Inferences and errors the devices reported in the minute buckets from `start`'s minute up to `end`. */
export async function stageTelemetryTotals(tx: Tx, deviceIds: readonly string[], start: Date, end: Date): Promise<{ inferences: number; errors: number }> {
  if (!deviceIds.length) return { inferences: 0, errors: 0 };
  const t = telemetryRollups;
  const [r] = await tx
    .select({ inferences: sql<number | null>`sum(${t.inferences})`, errors: sql<number | null>`sum(${t.errorCount})` })
    .from(t)
    .where(and(eq(t.scope, 'device'), sql`${t.key} in (select value from json_each(${JSON.stringify(deviceIds)}))`, gte(t.bucketStart, bucketStart(start, 'minute')), lt(t.bucketStart, end.toISOString())));
  return { inferences: Number(r?.inferences ?? 0), errors: Number(r?.errors ?? 0) };
}
