// A device's telemetry as a time series (the console's device charts): per step (a minute for windows
// up to 12 h, coarser beyond so a series stays ≤ 720 points) the inference and error rates, mean and
// max CPU, errors per reason, max resident memory and the largest outbox backlog, aggregated in SQL from the raw reports.
import { and, eq, gte, lt, sql } from 'drizzle-orm';
import { getDevice } from '../devices/device-service.ts';
import type { Tx } from '../db/client.ts';
import { telemetry } from '../db/schema.ts';
import { Invalid } from '../errors.ts';

export const MAX_SERIES_POINTS = 720;

export interface SeriesPoint {
  /** Start of the step (ISO). */
  t: string;
  reports: number;
  inferencesPerSecond: number;
  errorsPerSecond: number;
  /** Errors in the step per reason code (the reports' `errors` summed), for the errors-by-reason chart. */
  errorsByReason: Record<string, number>;
  cpuMean: number;
  cpuMax: number;
  rssMaxBytes: number;
  /** The largest outbox backlog (messages) reported in the step; null from agents that do not send it. */
  outboxPendingMax: number | null;
}

export interface DeviceSeries {
  device: string;
  window: { start: string; end: string; seconds: number };
  stepS: number;
  /** Steps with at least one report, oldest first (a gap is a step the device did not report in). */
  points: SeriesPoint[];
}

/** The step for a window: a minute, or the next whole minute count that keeps ≤ MAX_SERIES_POINTS. */
export function seriesStep(windowS: number): number {
  return Math.max(1, Math.ceil(windowS / 60 / MAX_SERIES_POINTS)) * 60;
}

export async function deviceSeries(tx: Tx, q: { device: string; windowS: number; end?: Date }): Promise<DeviceSeries> {
  const d = await getDevice(tx, q.device);
  const end = q.end ?? new Date();
  if (Number.isNaN(end.getTime())) throw Invalid('end must be an ISO 8601 time');
  const start = new Date(end.getTime() - q.windowS * 1000);
  const stepS = seriesStep(q.windowS);
  const t = telemetry;
  // Each report's counters cover its interval; a step's rate is its inferences over the intervals reported.
  // stepS inlined (an integer we computed): bound, libsql passes it as a REAL and the division stops flooring.
  const bucket = sql<number>`cast(strftime('%s', ${t.at}) as integer) / ${sql.raw(String(Math.trunc(stepS)))}`;
  const rows = await tx
    .select({
      bucket,
      reports: sql<number>`count(*)`,
      inferences: sql<number>`sum(${t.inferences})`,
      errors: sql<number>`sum((select coalesce(sum(value), 0) from json_each(${t.errors})))`,
      seconds: sql<number>`sum(${t.intervalS})`,
      cpuMean: sql<number>`avg(${t.cpu})`,
      cpuMax: sql<number>`max(${t.cpu})`,
      rssMax: sql<number>`max(${t.rssBytes})`,
      outboxPendingMax: sql<number | null>`max(json_extract(${t.monitoring}, '$.outboxPending'))`,
    })
    .from(t)
    .where(and(eq(t.deviceId, d.id), gte(t.at, start.toISOString()), lt(t.at, end.toISOString())))
    .groupBy(bucket)
    .orderBy(bucket);
  // The same steps split by reason: one row per (step, reason) from the reports' errors objects.
  const reasonRows = await tx.all<{ bucket: number; reason: string; n: number }>(
    sql`select ${bucket} as bucket, e.key as reason, sum(e.value) as n from ${t}, json_each(${t.errors}) e
        where ${t.deviceId} = ${d.id} and ${t.at} >= ${start.toISOString()} and ${t.at} < ${end.toISOString()} group by 1, 2`,
  );
  const byReason = new Map<number, Record<string, number>>();
  for (const r of reasonRows) byReason.set(Number(r.bucket), { ...byReason.get(Number(r.bucket)), [r.reason]: Number(r.n) });
  return {
    device: d.id,
    window: { start: start.toISOString(), end: end.toISOString(), seconds: q.windowS },
    stepS,
    points: rows.map((r) => ({
      t: new Date(Number(r.bucket) * stepS * 1000).toISOString(),
      reports: Number(r.reports),
      inferencesPerSecond: r.seconds ? Number(r.inferences) / Number(r.seconds) : 0,
      errorsPerSecond: r.seconds ? Number(r.errors) / Number(r.seconds) : 0,
      errorsByReason: byReason.get(Number(r.bucket)) ?? {},
      cpuMean: Number(r.cpuMean),
      cpuMax: Number(r.cpuMax),
      rssMaxBytes: Number(r.rssMax),
      outboxPendingMax: r.outboxPendingMax === null ? null : Number(r.outboxPendingMax),
    })),
  };
}
