// Stale desired state: a device whose reported active bundle differs from the desired one for longer
// than `staleAfterS` (FLOTILLA_DESIRED_STALE_AFTER_S) is shown as stale (device views, deployment
// views, `/metrics`) and its retained desired state is published again, at most once per
// `staleAfterS`. The clock lives in device_desired (mismatchSince / republishedAt), so every replica
// sees the same thing; two replicas sweeping only republish twice, which devices ignore.
import { and, eq, inArray, isNotNull, sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { Gauge } from 'prom-client';
import type { Db, Tx } from '../db/client.ts';
import { bundles, deviceDesired, devices } from '../db/schema.ts';
import type { Metrics } from '../metrics.ts';
import type { DesiredState } from './desired-state.ts';

interface SweepRow {
  deviceId: string;
  bundleId: string;
  mismatchSince: string | null;
  republishedAt: string | null;
  activeBundleId: string | null;
}

export type StaleAction = { kind: 'clear' } | { kind: 'start' } | { kind: 'republish' } | { kind: 'none' };

/** What one device's desired/active pair calls for at `now` (pure: the sweep applies it). */
export function staleAction(r: SweepRow, nowMs: number, staleAfterMs: number): StaleAction {
  if (r.activeBundleId === r.bundleId) return r.mismatchSince || r.republishedAt ? { kind: 'clear' } : { kind: 'none' };
  if (!r.mismatchSince) return { kind: 'start' };
  if (nowMs - Date.parse(r.mismatchSince) < staleAfterMs) return { kind: 'none' };
  if (r.republishedAt && nowMs - Date.parse(r.republishedAt) < staleAfterMs) return { kind: 'none' };
  return { kind: 'republish' };
}

export class StaleDesiredMonitor {
  private timer?: NodeJS.Timeout;
  private running: Promise<unknown> | null = null;

  constructor(private readonly o: { db: Db; desired: DesiredState; logger: Logger; staleAfterS: number; everyMs?: number }) {}

  start(): void {
    const every = this.o.everyMs ?? Math.max(250, Math.min(60_000, (this.o.staleAfterS * 1000) / 4));
    this.timer = setInterval(() => {
      this.running ??= this.sweep()
        .catch((err) => this.o.logger.error({ err }, 'stale desired sweep failed'))
        .finally(() => (this.running = null));
    }, every);
    this.timer.unref();
  }

  /** One pass; returns the devices whose desired state was re-published. */
  async sweep(now = new Date()): Promise<string[]> {
    const { db } = this.o;
    const rows = await db
      .select({ deviceId: deviceDesired.deviceId, bundleId: deviceDesired.bundleId, mismatchSince: deviceDesired.mismatchSince, republishedAt: deviceDesired.republishedAt, reported: devices.reported })
      .from(deviceDesired)
      .innerJoin(devices, eq(devices.id, deviceDesired.deviceId))
      .where(eq(devices.status, 'approved'));
    const at = now.toISOString();
    const republish: string[] = [];
    for (const r of rows) {
      const activeBundleId = (r.reported as { active?: { bundleId?: string } | null } | null)?.active?.bundleId ?? null;
      const action = staleAction({ ...r, activeBundleId }, now.getTime(), this.o.staleAfterS * 1000);
      // Each write is conditional on the bundle it judged, so a deployment landing meanwhile is not marked.
      const same = and(eq(deviceDesired.deviceId, r.deviceId), eq(deviceDesired.bundleId, r.bundleId));
      if (action.kind === 'clear') await db.update(deviceDesired).set({ mismatchSince: null, republishedAt: null }).where(same);
      else if (action.kind === 'start') await db.update(deviceDesired).set({ mismatchSince: at }).where(same);
      else if (action.kind === 'republish') {
        await db.update(deviceDesired).set({ republishedAt: at }).where(same);
        republish.push(r.deviceId);
        this.o.logger.warn({ deviceId: r.deviceId, desired: r.bundleId, active: activeBundleId, since: r.mismatchSince }, 'device has not converged to its desired bundle; re-publishing its desired state');
      }
    }
    if (republish.length) await this.o.desired.publish(republish);
    return republish;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}

/** Per device: whether its reported active bundle is one this server knows, and since when its desired state is stale. */
export async function trustAnnotations(tx: Tx, deviceRows: Array<{ id: string; reported: unknown }>): Promise<Map<string, { activeBundleKnown: boolean | null; desiredStale: { since: string; republishedAt: string } | null }>> {
  const out = new Map<string, { activeBundleKnown: boolean | null; desiredStale: { since: string; republishedAt: string } | null }>();
  if (!deviceRows.length) return out;
  const active = new Map(deviceRows.map((d) => [d.id, (d.reported as { active?: { bundleId?: string } | null } | null)?.active?.bundleId ?? null]));
  const ids = [...new Set([...active.values()].filter((b): b is string => typeof b === 'string'))];
  const known = new Set(ids.length ? (await tx.select({ id: bundles.id }).from(bundles).where(inArray(bundles.id, ids))).map((b) => b.id) : []);
  const stale = new Map(
    (await tx
      .select({ id: deviceDesired.deviceId, since: deviceDesired.mismatchSince, republishedAt: deviceDesired.republishedAt })
      .from(deviceDesired)
      .where(and(inArray(deviceDesired.deviceId, deviceRows.map((d) => d.id)), isNotNull(deviceDesired.mismatchSince), isNotNull(deviceDesired.republishedAt)))).map((r) => [r.id, { since: r.since!, republishedAt: r.republishedAt! }]),
  );
  for (const d of deviceRows) {
    const b = active.get(d.id);
    out.set(d.id, { activeBundleKnown: b ? known.has(b) : null, desiredStale: stale.get(d.id) ?? null });
  }
  return out;
}

/** Stale devices per deployment (the deployment whose desired state they have not reached). */
export async function staleByDeployment(tx: Tx, deploymentIds: string[]): Promise<Map<string, number>> {
  if (!deploymentIds.length) return new Map();
  const rows = await tx
    .select({ id: deviceDesired.deploymentId, n: sql<number>`count(*)` })
    .from(deviceDesired)
    .where(and(inArray(deviceDesired.deploymentId, deploymentIds), isNotNull(deviceDesired.mismatchSince), isNotNull(deviceDesired.republishedAt)))
    .groupBy(deviceDesired.deploymentId);
  return new Map(rows.map((r) => [r.id!, Number(r.n)]));
}

export function registerTrustGauges(db: Db, metrics: Metrics): void {
  new Gauge({
    name: 'flotilla_devices_desired_stale',
    help: 'Devices whose active bundle has differed from their desired one for longer than FLOTILLA_DESIRED_STALE_AFTER_S',
    registers: [metrics.registry],
    async collect() {
      const [r] = await db.select({ n: sql<number>`count(*)` }).from(deviceDesired).where(and(isNotNull(deviceDesired.mismatchSince), isNotNull(deviceDesired.republishedAt)));
      this.set(Number(r?.n ?? 0));
    },
  });
  new Gauge({
    name: 'flotilla_devices_active_bundle_unknown',
    help: 'Devices reporting an active bundle this server has no record of (e.g. after a restore from an older backup)',
    registers: [metrics.registry],
    async collect() {
      const [r] = await db.select({ n: sql<number>`count(*)` }).from(devices).where(
        sql`json_extract(${devices.reported}, '$.active.bundleId') is not null and json_extract(${devices.reported}, '$.active.bundleId') not in (select id from ${bundles})`,
      );
      this.set(Number(r?.n ?? 0));
    },
  });
}
