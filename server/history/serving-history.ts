// Reads of the serving history: which bundle (model version) each device served from when to when, through
// which deployment or rollout and who started it; for a device, a cohort or a model, optionally at one
// point in time ("what served on cohort berlin-pis at 03:10?").
import { and, desc, eq, gt, inArray, isNull, lte, or, sql, type SQL } from 'drizzle-orm';
import { cohortMembers } from '../cohorts/cohort-service.ts';
import type { Db } from '../db/client.ts';
import { devices, servingHistory } from '../db/schema.ts';
import { getDevice } from '../devices/device-service.ts';
import { NotFound } from '../errors.ts';

export interface HistoryFilter {
  device?: string;
  cohort?: string;
  model?: string;
  /** ISO time: only the intervals that served at that moment. */
  at?: string;
  limit: number;
  offset: number;
}

export interface ServingInterval {
  deviceId: string;
  deviceName: string | null;
  bundleId: string;
  model: string;
  version: number;
  counter: number;
  cohort: string | null;
  deploymentId: string | null;
  via: string;
  startedBy: string | null;
  from: string;
  to: string | null;
  activatedAt: string | null;
  lastFailure: { code: string; message: string; at: string; bundleId?: string } | null;
}

/** With `at`: how many of the matching devices served each bundle then. */
export interface ServingSummary {
  model: string;
  version: number;
  bundleId: string;
  devices: number;
}

async function where(db: Db, f: HistoryFilter): Promise<SQL | undefined> {
  const conds: Array<SQL | undefined> = [];
  if (f.device) {
    await getDevice(db, f.device); // 404 for an unknown device
    conds.push(eq(servingHistory.deviceId, f.device));
  }
  if (f.cohort) {
    // A cohort is a label selector: its devices now, and every interval a deployment to it started (devices
    // that have left it since still belong to its past).
    const { members } = await cohortMembers(db, f.cohort);
    const ids = members.map((d) => d.id);
    conds.push(ids.length ? or(eq(servingHistory.cohort, f.cohort), inArray(servingHistory.deviceId, ids)) : eq(servingHistory.cohort, f.cohort));
  }
  if (f.model) {
    const known = await db.select({ n: sql<number>`1` }).from(servingHistory).where(eq(servingHistory.model, f.model)).limit(1);
    if (!known.length && !(await db.query.models.findFirst({ where: (m, { eq }) => eq(m.name, f.model!) }))) throw NotFound(`model "${f.model}"`, { hint: 'list models with `flotilla models ls`' });
    conds.push(eq(servingHistory.model, f.model));
  }
  if (f.at) conds.push(lte(servingHistory.startedAt, f.at), or(isNull(servingHistory.endedAt), gt(servingHistory.endedAt, f.at)));
  return and(...conds);
}

export async function servingHistoryOf(db: Db, f: HistoryFilter): Promise<{ intervals: ServingInterval[]; serving?: ServingSummary[] }> {
  const w = await where(db, f);
  const rows = await db
    .select({ h: servingHistory, deviceName: devices.name })
    .from(servingHistory)
    .leftJoin(devices, eq(devices.id, servingHistory.deviceId))
    .where(w)
    .orderBy(desc(servingHistory.startedAt), desc(servingHistory.id))
    .limit(f.limit)
    .offset(f.offset);
  const intervals = rows.map(({ h, deviceName }): ServingInterval => ({
    deviceId: h.deviceId,
    deviceName,
    bundleId: h.bundleId,
    model: h.model,
    version: h.version,
    counter: h.counter,
    cohort: h.cohort,
    deploymentId: h.deploymentId,
    via: h.via,
    startedBy: h.startedBy,
    from: h.startedAt,
    to: h.endedAt,
    activatedAt: h.activatedAt,
    lastFailure: h.lastFailure ?? null,
  }));
  if (!f.at) return { intervals };
  const serving = await db
    .select({ model: servingHistory.model, version: servingHistory.version, bundleId: servingHistory.bundleId, devices: sql<number>`count(*)` })
    .from(servingHistory)
    .where(w)
    .groupBy(servingHistory.model, servingHistory.version, servingHistory.bundleId)
    .orderBy(desc(sql`count(*)`));
  return { intervals, serving };
}
