// The latency gate's worst device of a stage in one grouped query over the per-minute device
// telemetry rollups, where it used to run a full telemetry summary per active device on every tick.
// The p95 per device is the same as that summary's: the device's minute buckets from `start`'s minute
// up to `end`, their latency histograms merged.
import { and, eq, gte, lt } from 'drizzle-orm';
import { createLatencyHistogram, latencySummary, mergeLatencyHistograms, type LatencyHistogram } from '../../protocol/sketch/latency-histogram.ts';
import type { Tx } from '../db/client.ts';
import { inIds } from '../db/in-ids.ts';
import { telemetryRollups } from '../db/schema.ts';
import { bucketStart } from '../ingest/buckets.ts';

/**
 * The device with the highest p95 latency in the window (the first in `deviceIds` order on a tie), or
 * null without requests. `leading` holds latency measured outside the rollups (the raw reports of a
 * stage's first, partial minute), merged per device before the p95 is taken.
 */
export async function worstStageLatency(
  tx: Tx,
  deviceIds: readonly string[],
  start: Date,
  end: Date,
  leading: ReadonlyMap<string, LatencyHistogram> = new Map(),
): Promise<{ id: string; p95: number } | null> {
  if (!deviceIds.length) return null;
  const t = telemetryRollups;
  const rows =
    start < end
      ? await tx
          .select({ key: t.key, latency: t.latency })
          .from(t)
          .where(and(eq(t.scope, 'device'), inIds(t.key, deviceIds), gte(t.bucketStart, bucketStart(start, 'minute')), lt(t.bucketStart, end.toISOString())))
      : [];
  // mergeLatencyHistograms returns a new histogram, so the caller's map is never written to.
  const merged = new Map<string, LatencyHistogram>(leading);
  for (const r of rows) merged.set(r.key, mergeLatencyHistograms(merged.get(r.key) ?? createLatencyHistogram(), r.latency));
  let worst: { id: string; p95: number } | null = null;
  for (const id of deviceIds) {
    const h = merged.get(id);
    const p95 = h ? latencySummary(h).p95 : null;
    if (p95 !== null && (!worst || p95 > worst.p95)) worst = { id, p95 };
  }
  return worst;
}
