// A stage's per-minute device telemetry rollups in one grouped read, for the error-rate gate (requests
// and errors of every stage device) and the latency gate (each device's merged latency, worst p95).
// One row per device, not per rollup: at 10,000 devices × 10 minutes the per-row cost of bringing
// 100,000 rows into JavaScript (≈ 10 µs each on the shared build machine) was most of a tick; SQLite
// joins each device's latency histograms into one text (group_concat), parsed only for the devices
// the latency gate measures. The ids go in as one JSON parameter (inIds). With a stage aggregate
// (stage-aggregate.ts) a tick reads only what changed since the last one.
import { sql } from 'drizzle-orm';
import { latencySummary, mergeJoinedLatencies, mergeLatencyHistograms, type LatencyHistogram } from '../../protocol/sketch/latency-histogram.ts';
import type { Tx } from '../db/client.ts';
import { inIds } from '../db/in-ids.ts';
import { telemetryRollups } from '../db/schema.ts';
import { bucketStart } from '../ingest/buckets.ts';
import type { StageAggregate } from './stage-aggregate.ts';

export interface StageRollups {
  /** Requests served and failed by the devices in the minute buckets from `from`'s minute up to `end`. */
  inferences: number;
  errors: number;
  /** One device's latency histograms of the buckets from `latencyFrom` up to `end`, merged (null: none). */
  latencyOf(deviceId: string): LatencyHistogram | null;
}

/** Error rate from `from`'s minute, latency from `latencyFrom` (null: not measured), both up to `end`. */
export interface StageWindow {
  from: Date;
  latencyFrom: Date | null;
  end: Date;
}

export async function readStageRollups(tx: Tx, deviceIds: readonly string[], o: StageWindow, aggregate?: StageAggregate): Promise<StageRollups> {
  if (aggregate?.fits(o)) return aggregate.read(tx, deviceIds, o);
  const t = telemetryRollups;
  const latencyFrom = o.latencyFrom ? bucketStart(o.latencyFrom, 'minute') : null;
  const rows = deviceIds.length
    ? await tx.all<{ key: string; inferences: number | null; errors: number | null; latency: string | null }>(sql`
        select ${t.key} as key, sum(${t.inferences}) as inferences, sum(${t.errorCount}) as errors,
          group_concat(case when ${latencyFrom !== null ? sql`${t.bucketStart} >= ${latencyFrom}` : sql`0`} then ${t.latency} end, ',') as latency
        from ${t}
        where ${t.scope} = 'device' and ${inIds(t.key, deviceIds)} and ${t.bucketStart} >= ${bucketStart(o.from, 'minute')} and ${t.bucketStart} < ${o.end.toISOString()}
        group by ${t.key}`)
    : [];
  let inferences = 0;
  let errors = 0;
  const latency = new Map<string, string>();
  for (const r of rows) {
    inferences += Number(r.inferences ?? 0);
    errors += Number(r.errors ?? 0);
    if (r.latency) latency.set(r.key, r.latency);
  }
  return {
    inferences,
    errors,
    latencyOf(deviceId) {
      const text = latency.get(deviceId);
      return text ? mergeJoinedLatencies(text) : null;
    },
  };
}

/**
 * The device with the highest p95 latency (the first in `deviceIds` order on a tie), or null without
 * requests. `leading` holds latency measured outside the rollups (the raw reports of a stage's first,
 * partial minute), merged per device before the p95 is taken.
 */
export function worstLatency(deviceIds: readonly string[], rollups: Pick<StageRollups, 'latencyOf'>, leading: ReadonlyMap<string, LatencyHistogram> = new Map()): { id: string; p95: number } | null {
  let worst: { id: string; p95: number } | null = null;
  for (const id of deviceIds) {
    const fromRollups = rollups.latencyOf(id);
    const lead = leading.get(id);
    const h = fromRollups && lead ? mergeLatencyHistograms(fromRollups, lead) : (fromRollups ?? lead);
    const p95 = h ? latencySummary(h).p95 : null;
    if (p95 !== null && (!worst || p95 > worst.p95)) worst = { id, p95 };
  }
  return worst;
}
