// Telemetry read-out for one device or one cohort over a window, from the per-minute rollups:
// inference rate, errors by reason, merged latency quantiles, the devices' latest resources, and the
// monitoring data the devices lost (outbox drops, corrupt outbox files, stats samples dropped) apart
// from the request errors.
import { and, eq, gte, inArray, lt } from 'drizzle-orm';
import type { MonitoringLost } from '../../protocol/messages/telemetry.ts';
import { createLatencyHistogram, latencySummary, mergeLatencyHistograms } from '../../protocol/sketch/latency-histogram.ts';
import { cohortMembers } from '../cohorts/cohort-service.ts';
import type { Tx } from '../db/client.ts';
import { deviceDesired, telemetryLast, telemetryRollups } from '../db/schema.ts';
import { getDevice } from '../devices/device-service.ts';
import { Invalid } from '../errors.ts';
import { bucketStart } from '../ingest/buckets.ts';
import { droppedWindowsOfDevices, type DroppedWindows } from '../ingest/stats-drops.ts';
import { addLost } from '../ingest/telemetry-writer.ts';

export interface RollupTotals {
  reports: number;
  inferences: number;
  errorCount: number;
  errors: Record<string, number>;
  /** The span the counters cover: earliest interval start to latest report (null without data). */
  span: { from: string; to: string; seconds: number } | null;
  /** inferences / span seconds: the fleet's (or device's) rate while it reported. */
  ratePerSecond: number | null;
  /** Device-seconds in which the devices were serving (see `activeS` in protocol/messages/telemetry.ts). */
  activeSeconds: number;
  /** inferences / activeSeconds: requests per second while serving (for a cohort: per serving device). */
  activeRatePerSecond: number | null;
  errorsPerSecond: number | null;
  /** errors / (inferences + errors): failed share of requests. */
  errorRatio: number | null;
  /** Monitoring data lost on the devices over the window (null: no report carried the field, e.g. older agents). */
  monitoringLost: MonitoringLost | null;
}

type RollupRow = Pick<typeof telemetryRollups.$inferSelect, 'reports' | 'inferences' | 'errorCount' | 'errors' | 'firstStart' | 'lastAt' | 'monitoringLost' | 'activeSeconds'>;

/** Sums rollup rows. Rate = inferences over the covered span, so it is right for one device and for many reporting side by side. */
export function totalsOf(rows: RollupRow[]): RollupTotals {
  let reports = 0;
  let inferences = 0;
  let errorCount = 0;
  const errors: Record<string, number> = {};
  let from: string | null = null;
  let to: string | null = null;
  let monitoringLost: MonitoringLost | null = null;
  let activeSeconds = 0;
  // Rows written before active seconds were counted have 0: their inferences stay out of the active rate.
  let activeInferences = 0;
  for (const r of rows) {
    activeSeconds += r.activeSeconds;
    if (r.activeSeconds > 0) activeInferences += r.inferences;
    monitoringLost = addLost(monitoringLost, r.monitoringLost);
    reports += r.reports;
    inferences += r.inferences;
    errorCount += r.errorCount;
    for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
    if (from === null || r.firstStart < from) from = r.firstStart;
    if (to === null || r.lastAt > to) to = r.lastAt;
  }
  const seconds = from && to ? (Date.parse(to) - Date.parse(from)) / 1000 : 0;
  const span = from && to ? { from, to, seconds } : null;
  return {
    reports,
    inferences,
    errorCount,
    errors,
    span,
    ratePerSecond: seconds > 0 ? inferences / seconds : null,
    activeSeconds,
    activeRatePerSecond: activeSeconds > 0 ? activeInferences / activeSeconds : null,
    errorsPerSecond: seconds > 0 ? errorCount / seconds : null,
    errorRatio: inferences + errorCount > 0 ? errorCount / (inferences + errorCount) : null,
    monitoringLost,
  };
}

export interface DeviceResources {
  deviceId: string;
  at: string;
  cpu: number;
  rssBytes: number;
  diskFreeBytes: number;
  uptimeS: number;
  queueDepth: number;
  activeBundle: { id: string; counter: number } | null;
  /** Outbox backlog at `at` (null from agents that do not report it). */
  outboxPending: number | null;
  outboxPendingBytes: number | null;
}

export interface TelemetrySummary extends RollupTotals {
  target: { device: string } | { cohort: string };
  window: { start: string; end: string; seconds: number };
  latency: ReturnType<typeof latencySummary>;
  resources: {
    /** Latest report of each device (devices that never reported are left out). */
    devices: DeviceResources[];
    cpuMean: number | null;
    cpuMax: number | null;
    rssMaxBytes: number | null;
    diskFreeMinBytes: number | null;
  };
  /** Monitoring data lost: `lost` over the window (= `monitoringLost`), `pending` now (sum of the devices' latest backlog). */
  monitoring: {
    lost: MonitoringLost | null;
    pending: { messages: number; bytes: number; devices: number } | null;
    /** Stats windows the server refused against a reference (e.g. `no_reference`), by reason, with what to do. */
    refusedStats: DroppedWindows[];
  };
}

function pendingOf(devices: DeviceResources[]): TelemetrySummary['monitoring']['pending'] {
  const reporting = devices.filter((d) => d.outboxPending !== null);
  if (!reporting.length) return null;
  return { messages: reporting.reduce((s, d) => s + d.outboxPending!, 0), bytes: reporting.reduce((s, d) => s + (d.outboxPendingBytes ?? 0), 0), devices: reporting.length };
}

async function lastResources(tx: Tx, ids: string[]): Promise<DeviceResources[]> {
  const out: DeviceResources[] = [];
  for (let i = 0; i < ids.length; i += 500) out.push(...(await tx.select().from(telemetryLast).where(inArray(telemetryLast.deviceId, ids.slice(i, i + 500)))));
  return out.sort((a, b) => a.deviceId.localeCompare(b.deviceId));
}

export async function telemetrySummary(tx: Tx, q: { device?: string; cohort?: string; windowS: number; end?: Date }): Promise<TelemetrySummary> {
  if (Boolean(q.device) === Boolean(q.cohort)) throw Invalid('give exactly one of device or cohort');
  const end = q.end ?? new Date();
  if (Number.isNaN(end.getTime())) throw Invalid('end must be an ISO 8601 time');
  const start = new Date(end.getTime() - q.windowS * 1000);
  let scope: 'device' | 'cohort';
  let key: string;
  let ids: string[];
  if (q.device) {
    const d = await getDevice(tx, q.device);
    scope = 'device';
    key = d.id;
    ids = [d.id];
  } else {
    const { cohort, members } = await cohortMembers(tx, q.cohort!);
    scope = 'cohort';
    key = cohort.name;
    // Current members plus devices whose desired state came from this cohort (as ingest counts them).
    const deployed = await tx.select({ id: deviceDesired.deviceId }).from(deviceDesired).where(eq(deviceDesired.cohort, cohort.name));
    ids = [...new Set([...members.map((m) => m.id), ...deployed.map((d) => d.id)])];
  }
  const t = telemetryRollups;
  const rows = await tx
    .select()
    .from(t)
    .where(and(eq(t.scope, scope), eq(t.key, key), gte(t.bucketStart, bucketStart(start, 'minute')), lt(t.bucketStart, end.toISOString())));
  const latency = rows.reduce((h, r) => mergeLatencyHistograms(h, r.latency), createLatencyHistogram());
  const devices = await lastResources(tx, ids);
  const totals = totalsOf(rows);
  const max = (xs: number[]) => (xs.length ? Math.max(...xs) : null);
  return {
    target: q.device ? { device: key } : { cohort: key },
    window: { start: start.toISOString(), end: end.toISOString(), seconds: q.windowS },
    ...totals,
    latency: latencySummary(latency),
    resources: {
      devices,
      cpuMean: devices.length ? devices.reduce((s, d) => s + d.cpu, 0) / devices.length : null,
      cpuMax: max(devices.map((d) => d.cpu)),
      rssMaxBytes: max(devices.map((d) => d.rssBytes)),
      diskFreeMinBytes: devices.length ? Math.min(...devices.map((d) => d.diskFreeBytes)) : null,
    },
    monitoring: { lost: totals.monitoringLost, pending: pendingOf(devices), refusedStats: await droppedWindowsOfDevices(tx, ids, { start: start.toISOString(), end: end.toISOString() }) },
  };
}
