// Stats windows refused against a version's reference (no reference yet, other bins, a missing
// feature): counted per hour, version, device and reason in the ingest transaction, so `flotilla
// drift` can say how many windows from how many devices were lost, why, and what to do — not only
// /metrics. Other refusals (duplicates, unknown devices) have no model version to show them under.
import { and, eq, gte, inArray, lt, sql } from 'drizzle-orm';
import type { Tx } from '../db/client.ts';
import { statsDrops } from '../db/schema.ts';
import { bucketStart, type QueryWindow } from './buckets.ts';

/** One refused window. */
export interface StatsDrop {
  modelVersionId: number;
  deviceId: string;
  reason: string;
  rows: number;
  at: Date;
}

export async function recordStatsDrops(tx: Tx, drops: readonly StatsDrop[]): Promise<void> {
  for (const d of drops) {
    const row = { modelVersionId: d.modelVersionId, deviceId: d.deviceId, reason: d.reason, bucketStart: bucketStart(d.at, 'hour'), windows: 1, rows: d.rows, lastAt: d.at.toISOString() };
    await tx
      .insert(statsDrops)
      .values(row)
      .onConflictDoUpdate({
        target: [statsDrops.modelVersionId, statsDrops.bucketStart, statsDrops.reason, statsDrops.deviceId],
        set: { windows: sql`${statsDrops.windows} + 1`, rows: sql`${statsDrops.rows} + ${d.rows}`, lastAt: row.lastAt },
      });
  }
}

/** What to do about each reason, in the user's words. */
const HINTS: Record<string, string> = {
  no_reference: 'the version has no reference profile: add one (`flotilla models reference <model@N> <file>` or `--dataset <name@N>`); running devices pick it up within a window, no redeploy needed',
  edges_mismatch: 'sketched on other bins than the current reference (a replaced reference, or an agent too old to adopt the layout from its manifest): windows in flight right after a change are expected; otherwise upgrade the agent',
  categories_mismatch: 'sketched on other categories than the current reference: as for edges_mismatch',
  missing_feature: "the device's layout lacks a reference feature: the device runs a bundle or agent that does not know the current reference; upgrade the agent or redeploy",
  unknown_feature: 'the device sketches a feature the reference does not have: as for missing_feature',
  kind_mismatch: 'a feature is numeric on one side and categorical on the other: as for missing_feature',
  outputs_mismatch: "the device's outputs differ from the reference's (e.g. a reference without outputs): as for missing_feature",
};

export interface DroppedWindows {
  reason: string;
  windows: number;
  rows: number;
  devices: number;
  lastAt: string;
  hint: string;
}

/** Refused windows of a version in the hours overlapping `window`, by reason. */
export async function droppedWindows(tx: Tx, modelVersionId: number, window: Pick<QueryWindow, 'start' | 'end'>): Promise<DroppedWindows[]> {
  const t = statsDrops;
  const rows = await tx
    .select({ reason: t.reason, windows: sql<number>`sum(${t.windows})`, rows: sql<number>`sum(${t.rows})`, devices: sql<number>`count(distinct ${t.deviceId})`, lastAt: sql<string>`max(${t.lastAt})` })
    .from(t)
    .where(and(eq(t.modelVersionId, modelVersionId), gte(t.bucketStart, bucketStart(window.start, 'hour')), lt(t.bucketStart, window.end)))
    .groupBy(t.reason);
  return rows.map((r) => ({ reason: r.reason, windows: Number(r.windows), rows: Number(r.rows), devices: Number(r.devices), lastAt: r.lastAt, hint: HINTS[r.reason] ?? 'see protocol/DRIFT.md, "Wire"' }));
}

/** Refused windows of some devices (any version) in the hours overlapping `window`, by reason: what `flotilla telemetry` shows. */
export async function droppedWindowsOfDevices(tx: Tx, deviceIds: readonly string[], window: Pick<QueryWindow, 'start' | 'end'>): Promise<DroppedWindows[]> {
  if (!deviceIds.length) return [];
  const t = statsDrops;
  const by = new Map<string, { windows: number; rows: number; devices: Set<string>; lastAt: string }>();
  for (let i = 0; i < deviceIds.length; i += 500) {
    const rows = await tx
      .select({ reason: t.reason, deviceId: t.deviceId, windows: sql<number>`sum(${t.windows})`, rows: sql<number>`sum(${t.rows})`, lastAt: sql<string>`max(${t.lastAt})` })
      .from(t)
      .where(and(inArray(t.deviceId, deviceIds.slice(i, i + 500)), gte(t.bucketStart, bucketStart(window.start, 'hour')), lt(t.bucketStart, window.end)))
      .groupBy(t.reason, t.deviceId);
    for (const r of rows) {
      const acc = by.get(r.reason) ?? { windows: 0, rows: 0, devices: new Set<string>(), lastAt: '' };
      acc.windows += Number(r.windows);
      acc.rows += Number(r.rows);
      acc.devices.add(r.deviceId);
      if (r.lastAt > acc.lastAt) acc.lastAt = r.lastAt;
      by.set(r.reason, acc);
    }
  }
  return [...by].map(([reason, a]) => ({ reason, windows: a.windows, rows: a.rows, devices: a.devices.size, lastAt: a.lastAt, hint: HINTS[reason] ?? 'see protocol/DRIFT.md, "Wire"' }));
}

/** Retention: drop counters older than `before` (ISO). */
export async function deleteOldStatsDrops(tx: Tx, before: string): Promise<number> {
  return (await tx.delete(statsDrops).where(lt(statsDrops.bucketStart, before)).returning({ v: statsDrops.modelVersionId })).length;
}
