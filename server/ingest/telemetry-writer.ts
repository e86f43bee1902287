// Writes a batch of accepted `telemetry` reports inside the caller's transaction: raw reports
// (insert-or-ignore on device + seq), per-minute rollups of the new ones for their device, cohorts
// and the fleet, and each device's latest resources. The optional `monitoring` part (data the device
// itself lost) is summed into the rollups' `monitoringLost`, never into `errors`; its outbox backlog
// goes with the latest resources.
import { sql } from 'drizzle-orm';
import { cloneLatencyHistogram, createLatencyHistogram, mergeLatencyInto, type LatencyHistogram } from '../../protocol/sketch/latency-histogram.ts';
import type { MonitoringLost, TelemetryMessage } from '../../protocol/messages/telemetry.ts';
import type { Tx } from '../db/client.ts';
import { bucketStart, isoUtc } from './buckets.ts';
import { insertNewMessages, insertRows } from './multi-row.ts';
import { FLEET_KEY } from './stats-writer.ts';

export interface TelemetryItem {
  deviceId: string;
  message: TelemetryMessage;
  cohorts: string[];
}

type Scope = 'device' | 'cohort' | 'fleet';
interface Acc {
  scope: Scope;
  key: string;
  bucketStart: string;
  reports: number;
  inferences: number;
  errorCount: number;
  errors: Record<string, number>;
  latency: LatencyHistogram;
  firstStart: string;
  lastAt: string;
  /** Null while no report of the bucket carried `monitoring` (older agents). */
  monitoringLost: MonitoringLost | null;
  activeSeconds: number;
  /** Whether `latency` belongs to this rollup (else it is a report's, copied before the first merge). */
  ownLatency: boolean;
}

const keyOf = (r: { scope: string; key: string; bucketStart: string }) => `${r.scope}\u0000${r.key}\u0000${r.bucketStart}`;

function addErrors(into: Record<string, number>, from: Record<string, number>): number {
  let n = 0;
  for (const [k, v] of Object.entries(from)) {
    into[k] = (into[k] ?? 0) + v;
    n += v;
  }
  return n;
}

/** Sums loss counters; null (not reported) only when both are. */
export function addLost(a: MonitoringLost | null, b: MonitoringLost | null): MonitoringLost | null {
  if (!a || !b) return a || b ? { ...(a ?? b)! } : null;
  return { outboxDropped: a.outboxDropped + b.outboxDropped, outboxCorrupt: a.outboxCorrupt + b.outboxCorrupt, statsDropped: a.statsDropped + b.statsDropped };
}

const lostOf = (m: TelemetryMessage): MonitoringLost | null =>
  m.monitoring ? { outboxDropped: m.monitoring.outboxDropped, outboxCorrupt: m.monitoring.outboxCorrupt, statsDropped: m.monitoring.statsDropped } : null;

/**
 * Adds `b` into `a` in place: `a`'s errors are its own object, and its latency is copied on its first
 * merge (until then it may be a report's own histogram, stored as it came), then merged into.
 */
function combine(a: Acc, b: Omit<Acc, 'scope' | 'key' | 'bucketStart' | 'ownLatency'>): void {
  a.reports += b.reports;
  a.inferences += b.inferences;
  a.errorCount += b.errorCount;
  addErrors(a.errors, b.errors);
  if (!a.ownLatency) {
    a.latency = cloneLatencyHistogram(a.latency);
    a.ownLatency = true;
  }
  mergeLatencyInto(a.latency, b.latency);
  if (b.firstStart < a.firstStart) a.firstStart = b.firstStart;
  if (b.lastAt > a.lastAt) a.lastAt = b.lastAt;
  a.monitoringLost = addLost(a.monitoringLost, b.monitoringLost);
  a.activeSeconds += b.activeSeconds;
}

/** Seconds the device was serving in a report: its `activeS`, else (older agents) the whole interval if it had requests. */
export function activeSecondsOf(m: TelemetryMessage, errorCount: number): number {
  if (m.activeS !== undefined) return Math.min(m.activeS, m.intervalS);
  return m.inferences + errorCount > 0 ? m.intervalS : 0;
}

/** Stores the reports and updates rollups; returns how many were new and how many were resends. */
export async function writeTelemetry(tx: Tx, items: TelemetryItem[], now: Date): Promise<{ stored: number; duplicates: number }> {
  const receivedAt = now.toISOString();
  // Bound multi-row statements (multi-row.ts); JSON columns travel as their JSON text, stored as drizzle would store them.
  const fresh = await insertNewMessages(
    tx,
    'INSERT INTO telemetry (device_id, seq, at, interval_s, inferences, errors, latency, queue_depth, cpu, rss_bytes, disk_free_bytes, uptime_s, active_bundle_id, monitoring, received_at)',
    items,
    ({ deviceId, message: m }) => [
      deviceId,
      m.seq,
      isoUtc(m.at),
      m.intervalS,
      m.inferences,
      JSON.stringify(m.errors),
      JSON.stringify(m.latency),
      m.queueDepth,
      m.cpu,
      m.rssBytes,
      m.diskFreeBytes,
      m.uptimeS,
      m.activeBundle?.id ?? null,
      m.monitoring ? JSON.stringify(m.monitoring) : null,
      receivedAt,
    ],
  );

  const acc = new Map<string, Acc>();
  const latest = new Map<string, TelemetryItem>();
  for (const it of fresh) {
    const m = it.message;
    const at = isoUtc(m.at);
    const errors: Record<string, number> = {};
    const errorCount = addErrors(errors, m.errors);
    const part = {
      reports: 1,
      inferences: m.inferences,
      errorCount,
      activeSeconds: activeSecondsOf(m, errorCount),
      errors,
      latency: m.latency,
      firstStart: new Date(Date.parse(m.at) - m.intervalS * 1000).toISOString(),
      lastAt: at,
      monitoringLost: lostOf(m),
    };
    const bucket = bucketStart(at, 'minute');
    const scopes: Array<[Scope, string]> = [['device', it.deviceId], ...it.cohorts.map((c): [Scope, string] => ['cohort', c]), ['fleet', FLEET_KEY]];
    for (const [scope, key] of scopes) {
      const k = keyOf({ scope, key, bucketStart: bucket });
      const cur = acc.get(k);
      if (!cur) acc.set(k, { scope, key, bucketStart: bucket, ...part, errors: { ...errors }, ownLatency: false });
      else combine(cur, part);
    }
    const prev = latest.get(it.deviceId);
    if (!prev || Date.parse(prev.message.at) <= Date.parse(m.at)) latest.set(it.deviceId, it);
  }

  const rollups = [...acc.values()];
  if (rollups.length) {
    // The existing rows of the batch's buckets in one read (the keys as a JSON array, each one primary-key lookup), the merged rows in one upsert.
    const keys = JSON.stringify(rollups.map((r) => [r.scope, r.key, r.bucketStart]));
    const found = await tx.all<Record<string, unknown>>(sql`
      SELECT r.* FROM json_each(${keys}) k CROSS JOIN telemetry_rollups r ON r.scope = k.value->>0 AND r.key = k.value->>1 AND r.bucket_start = k.value->>2`);
    const existing = found.map((r) => ({
      scope: r.scope as Scope,
      key: r.key as string,
      bucketStart: r.bucket_start as string,
      reports: r.reports as number,
      inferences: r.inferences as number,
      errorCount: r.error_count as number,
      activeSeconds: Number(r.active_seconds ?? 0),
      errors: JSON.parse(r.errors as string) as Record<string, number>,
      latency: r.latency == null ? null : (JSON.parse(r.latency as string) as LatencyHistogram),
      firstStart: r.first_start as string,
      lastAt: r.last_at as string,
      monitoringLost: r.monitoring_lost == null ? null : (JSON.parse(r.monitoring_lost as string) as MonitoringLost),
    }));
    const byKey = new Map(existing.map((r) => [keyOf(r), r]));
    const values = rollups.map((r) => {
      const old = byKey.get(keyOf(r));
      let v: Acc = r;
      if (old) {
        v = { ...old, errors: { ...old.errors }, latency: old.latency ?? createLatencyHistogram(), ownLatency: true };
        combine(v, r);
      }
      return [r.scope, r.key, r.bucketStart, v.reports, v.inferences, v.errorCount, JSON.stringify(v.errors), JSON.stringify(v.latency), v.firstStart, v.lastAt, v.monitoringLost ? JSON.stringify(v.monitoringLost) : null, v.activeSeconds, receivedAt];
    });
    await insertRows(
      tx,
      'INSERT INTO telemetry_rollups (scope, key, bucket_start, reports, inferences, error_count, errors, latency, first_start, last_at, monitoring_lost, active_seconds, updated_at)',
      values,
      `ON CONFLICT (scope, key, bucket_start) DO UPDATE SET
        reports = excluded.reports, inferences = excluded.inferences, error_count = excluded.error_count, errors = excluded.errors, latency = excluded.latency,
        first_start = excluded.first_start, last_at = excluded.last_at, monitoring_lost = excluded.monitoring_lost, active_seconds = excluded.active_seconds,
        updated_at = excluded.updated_at`,
    );
  }

  const last = [...latest.values()].map(({ deviceId, message: m }) => [
    deviceId,
    isoUtc(m.at),
    m.seq,
    m.cpu,
    m.rssBytes,
    m.diskFreeBytes,
    m.uptimeS,
    m.queueDepth,
    m.activeBundle ? JSON.stringify(m.activeBundle) : null,
    m.monitoring?.outboxPending ?? null,
    m.monitoring?.outboxPendingBytes ?? null,
  ]);
  // A late (store-and-forward) report must not overwrite newer resources.
  await insertRows(
    tx,
    'INSERT INTO telemetry_last (device_id, at, seq, cpu, rss_bytes, disk_free_bytes, uptime_s, queue_depth, active_bundle, outbox_pending, outbox_pending_bytes)',
    last,
    `ON CONFLICT (device_id) DO UPDATE SET
      at = excluded.at, seq = excluded.seq, cpu = excluded.cpu, rss_bytes = excluded.rss_bytes, disk_free_bytes = excluded.disk_free_bytes, uptime_s = excluded.uptime_s,
      queue_depth = excluded.queue_depth, active_bundle = excluded.active_bundle, outbox_pending = excluded.outbox_pending, outbox_pending_bytes = excluded.outbox_pending_bytes
      WHERE excluded.at >= telemetry_last.at`,
  );
  return { stored: fresh.length, duplicates: items.length - fresh.length };
}
