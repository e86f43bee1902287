// Writes a batch of accepted `telemetry` reports inside the caller's transaction: raw reports
// (insert-or-ignore on device + seq), per-minute rollups of the new ones for their device, cohorts
// and the fleet, and each device's latest resources. The optional `monitoring` part (data the device
// itself lost) is summed into the rollups' `monitoringLost`, never into `errors`; its outbox backlog
// goes with the latest resources.
import { sql } from 'drizzle-orm';
import { createLatencyHistogram, mergeLatencyHistograms, type LatencyHistogram } from '../../protocol/sketch/latency-histogram.ts';
import type { MonitoringLost, TelemetryMessage } from '../../protocol/messages/telemetry.ts';
import type { Tx } from '../db/client.ts';
import { telemetry, telemetryLast, telemetryRollups } from '../db/schema.ts';
import { bucketStart, isoUtc } from './buckets.ts';
import { rowsByKey } from './rows-by-key.ts';
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
}

const CHUNK = 200;
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

function combine(a: Acc, b: Omit<Acc, 'scope' | 'key' | 'bucketStart'>): void {
  a.reports += b.reports;
  a.inferences += b.inferences;
  a.errorCount += b.errorCount;
  const errors = { ...a.errors };
  addErrors(errors, b.errors);
  a.errors = errors;
  a.latency = mergeLatencyHistograms(a.latency, b.latency);
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
  const fresh: TelemetryItem[] = [];
  for (let i = 0; i < items.length; i += CHUNK) {
    const chunk = items.slice(i, i + CHUNK);
    const inserted = await tx
      .insert(telemetry)
      .values(
        chunk.map(({ deviceId, message: m }) => ({
          deviceId,
          seq: m.seq,
          at: isoUtc(m.at),
          intervalS: m.intervalS,
          inferences: m.inferences,
          errors: m.errors,
          latency: m.latency,
          queueDepth: m.queueDepth,
          cpu: m.cpu,
          rssBytes: m.rssBytes,
          diskFreeBytes: m.diskFreeBytes,
          uptimeS: m.uptimeS,
          activeBundleId: m.activeBundle?.id ?? null,
          monitoring: m.monitoring ?? null,
          receivedAt,
        })),
      )
      .onConflictDoNothing()
      .returning({ deviceId: telemetry.deviceId, seq: telemetry.seq });
    const added = new Set(inserted.map((r) => `${r.deviceId}\u0000${r.seq}`));
    for (const it of chunk) if (added.delete(`${it.deviceId}\u0000${it.message.seq}`)) fresh.push(it);
  }

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
      if (!cur) acc.set(k, { scope, key, bucketStart: bucket, ...part, errors: { ...errors } });
      else combine(cur, part);
    }
    const prev = latest.get(it.deviceId);
    if (!prev || Date.parse(prev.message.at) <= Date.parse(m.at)) latest.set(it.deviceId, it);
  }

  const rollups = [...acc.values()];
  const t = telemetryRollups;
  for (let i = 0; i < rollups.length; i += CHUNK) {
    const chunk = rollups.slice(i, i + CHUNK);
    const found = await rowsByKey(tx, t, [t.scope, t.key, t.bucketStart], chunk.map((r) => [r.scope, r.key, r.bucketStart]));
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
    const values = chunk.map((r) => {
      const old = byKey.get(keyOf(r));
      if (old) {
        const merged: Acc = { ...old, errors: { ...old.errors }, latency: old.latency ?? createLatencyHistogram() };
        combine(merged, r);
        return { ...r, ...merged, updatedAt: receivedAt };
      }
      return { ...r, updatedAt: receivedAt };
    });
    await tx
      .insert(t)
      .values(values)
      .onConflictDoUpdate({
        target: [t.scope, t.key, t.bucketStart],
        set: {
          reports: sql`excluded.reports`,
          inferences: sql`excluded.inferences`,
          errorCount: sql`excluded.error_count`,
          errors: sql`excluded.errors`,
          latency: sql`excluded.latency`,
          firstStart: sql`excluded.first_start`,
          lastAt: sql`excluded.last_at`,
          monitoringLost: sql`excluded.monitoring_lost`,
          activeSeconds: sql`excluded.active_seconds`,
          updatedAt: sql`excluded.updated_at`,
        },
      });
  }

  const last = [...latest.values()].map(({ deviceId, message: m }) => ({
    deviceId,
    at: isoUtc(m.at),
    seq: m.seq,
    cpu: m.cpu,
    rssBytes: m.rssBytes,
    diskFreeBytes: m.diskFreeBytes,
    uptimeS: m.uptimeS,
    queueDepth: m.queueDepth,
    activeBundle: m.activeBundle,
    outboxPending: m.monitoring?.outboxPending ?? null,
    outboxPendingBytes: m.monitoring?.outboxPendingBytes ?? null,
  }));
  for (let i = 0; i < last.length; i += CHUNK) {
    const l = telemetryLast;
    await tx
      .insert(l)
      .values(last.slice(i, i + CHUNK))
      .onConflictDoUpdate({
        target: l.deviceId,
        set: {
          at: sql`excluded.at`,
          seq: sql`excluded.seq`,
          cpu: sql`excluded.cpu`,
          rssBytes: sql`excluded.rss_bytes`,
          diskFreeBytes: sql`excluded.disk_free_bytes`,
          uptimeS: sql`excluded.uptime_s`,
          queueDepth: sql`excluded.queue_depth`,
          activeBundle: sql`excluded.active_bundle`,
          outboxPending: sql`excluded.outbox_pending`,
          outboxPendingBytes: sql`excluded.outbox_pending_bytes`,
        },
        // A late (store-and-forward) report must not overwrite newer resources.
        setWhere: sql`excluded.at >= ${l.at}`,
      });
  }
  return { stored: fresh.length, duplicates: items.length - fresh.length };
}
