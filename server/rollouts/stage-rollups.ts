// A stage's per-minute device telemetry rollups in one grouped read, for the error-rate gate (requests
// and errors of the stage's devices on the candidate) and the latency gate (each device's merged latency, worst p95).
// One row per device, not per rollup: at 10,000 devices × 10 minutes the per-row cost of bringing
// 100,000 rows into JavaScript (≈ 10 µs each on the shared build machine) was most of a tick; SQLite
// joins each device's latency histograms into one text (group_concat), parsed only for the devices
// the latency gate measures. The ids go in as one JSON parameter (inIds). With a stage aggregate
// (stage-aggregate.ts) a tick reads only what changed since the last one.
//
// Each device is read from its own first minute on the candidate (`cuts`): a device's minute rollup holds
// whatever it served in that minute, so the minutes before its switch hold the previous bundle's requests
// (a device that switched 30 s into a minute mixed both there, and a 60× slower candidate passed the
// latency gate on the previous bundle's p95); a device not switched yet serves the previous bundle.
import { sql, type SQL } from 'drizzle-orm';
import { latencySummary, mergeJoinedLatencies, mergeLatencyHistograms, type LatencyHistogram } from '../../protocol/sketch/latency-histogram.ts';
import type { Tx } from '../db/client.ts';
import { inIds } from '../db/in-ids.ts';
import { telemetryRollups } from '../db/schema.ts';
import { bucketStart } from '../ingest/buckets.ts';
import type { StageAggregate } from './stage-aggregate.ts';

export interface StageRollups {
  /** Requests served and failed on the candidate: each device's minute buckets from its cut up to `end`. */
  inferences: number;
  errors: number;
  /** One device's latency histograms of the buckets from its cut up to `end`, merged (null: none). */
  latencyOf(deviceId: string): LatencyHistogram | null;
}

/** Per device, the first minute bucket (epoch ms) that holds only requests served on the candidate; a device absent is not read. */
export type StageCuts = ReadonlyMap<string, number>;

/** The devices' rollups from their cuts up to `end`; `from` bounds what a stage aggregate keeps (its minute and after). */
export interface StageWindow {
  from: Date;
  cuts: StageCuts;
  end: Date;
}

export async function readStageRollups(tx: Tx, deviceIds: readonly string[], o: StageWindow, aggregate?: StageAggregate): Promise<StageRollups> {
  if (aggregate?.fits(o)) return aggregate.read(tx, deviceIds, o);
  const rows = await readDeviceRollups(tx, sql`${telemetryRollups}`, deviceIds, o.cuts, Date.parse(bucketStart(o.from, 'minute')), o.end.getTime());
  const latency = new Map<string, string>();
  let inferences = 0;
  let errors = 0;
  for (const r of rows) {
    inferences += r.inferences;
    errors += r.errors;
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

/** One device's rollups over its minutes: summed counters, and its latency histograms joined by SQLite. */
export interface DeviceRollups {
  key: string;
  inferences: number;
  errors: number;
  latency: string | null;
}

/**
 * Each device's rollups in the minute buckets from max(from, its cut) up to `to`, a row per device: one
 * query per distinct first minute (devices switch at different times, but a few minutes' reads share a
 * handful of them). Devices without a cut are not read.
 */
export async function readDeviceRollups(tx: Tx, table: SQL, ids: readonly string[], cuts: StageCuts, from: number, to: number): Promise<DeviceRollups[]> {
  const groups = new Map<number, string[]>();
  for (const id of ids) {
    const cut = cuts.get(id);
    if (cut === undefined) continue;
    const start = Math.max(from, cut);
    if (start >= to) continue;
    const group = groups.get(start);
    if (group) group.push(id);
    else groups.set(start, [id]);
  }
  const out: DeviceRollups[] = [];
  for (const [start, group] of groups) {
    const rows = await tx.all<{ key: string; inferences: number | null; errors: number | null; latency: string | null }>(sql`
      select key, sum(inferences) as inferences, sum(error_count) as errors, group_concat(latency, ',') as latency from ${table}
      where scope = 'device' and ${inIds(sql`key`, group)} and bucket_start >= ${new Date(start).toISOString()} and bucket_start < ${new Date(to).toISOString()}
      group by key`);
    for (const r of rows) out.push({ key: r.key, inferences: Number(r.inferences ?? 0), errors: Number(r.errors ?? 0), latency: r.latency });
  }
  return out;
}

/**
 * The device with the highest p95 latency (the first in `deviceIds` order on a tie), or null without
 * requests. `leading` holds latency measured outside the rollups (the raw reports of devices that switched
 * too recently to have a whole minute on the candidate), merged per device before the p95 is taken.
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
