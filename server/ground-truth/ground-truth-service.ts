// Ground truth: logged predictions (from devices or external systems) and labels for them (from
// whoever learns the truth, possibly days later, possibly before the prediction arrives), joined at
// query time into the task metric — accuracy: the share of labeled predictions whose predicted
// value equals the label (both compared as strings, so class indices and class names both work).
import { and, eq, inArray, sql } from 'drizzle-orm';
import { recordAudit } from '../audit/audit-log.ts';
import { cohortMembers } from '../cohorts/cohort-service.ts';
import type { Db, Tx } from '../db/client.ts';
import { deviceDesired, devices, predictionLabels, predictions } from '../db/schema.ts';
import { Invalid } from '../errors.ts';
import { isoUtc } from '../ingest/buckets.ts';
import { formatRef } from '../models/model-ref.ts';
import { resolveVersion } from '../models/model-service.ts';

export interface PredictionInput {
  predictionId: string;
  deviceId?: string;
  model: string;
  predicted: string | number;
  at: string;
}

export interface PredictionResult {
  accepted: number;
  duplicates: number;
  rejected: Array<{ predictionId: string; reason: string }>;
}

const CHUNK = 200;

export async function recordPredictions(db: Db, items: PredictionInput[], actor: string): Promise<PredictionResult> {
  return db.transaction(async (tx) => {
    const versions = new Map<string, number>();
    for (const ref of new Set(items.map((i) => i.model))) versions.set(ref, (await resolveVersion(tx, ref)).id);
    const deviceIds = [...new Set(items.map((i) => i.deviceId).filter((d): d is string => Boolean(d)))];
    const known = new Set<string>();
    for (let i = 0; i < deviceIds.length; i += 500) {
      for (const r of await tx.select({ id: devices.id }).from(devices).where(inArray(devices.id, deviceIds.slice(i, i + 500)))) known.add(r.id);
    }
    const rejected: PredictionResult['rejected'] = [];
    const rows = [];
    const receivedAt = new Date().toISOString();
    for (const it of items) {
      if (it.deviceId && !known.has(it.deviceId)) {
        rejected.push({ predictionId: it.predictionId, reason: 'unknown_device' });
        continue;
      }
      rows.push({ predictionId: it.predictionId, deviceId: it.deviceId ?? null, modelVersionId: versions.get(it.model)!, predicted: String(it.predicted), at: isoUtc(it.at), receivedAt });
    }
    let accepted = 0;
    for (let i = 0; i < rows.length; i += CHUNK) {
      accepted += (await tx.insert(predictions).values(rows.slice(i, i + CHUNK)).onConflictDoNothing().returning({ id: predictions.predictionId })).length;
    }
    await recordAudit(tx, actor, 'predictions.record', [...versions.keys()].join(','), { accepted, duplicates: rows.length - accepted, rejected: rejected.length });
    return { accepted, duplicates: rows.length - accepted, rejected };
  });
}

/** Stores labels (a later label for the same prediction replaces the earlier one). */
export async function recordLabels(db: Db, items: Array<{ predictionId: string; label: string | number }>, actor: string): Promise<{ stored: number; matched: number }> {
  return db.transaction(async (tx) => {
    const labeledAt = new Date().toISOString();
    let matched = 0;
    for (let i = 0; i < items.length; i += CHUNK) {
      const chunk = items.slice(i, i + CHUNK);
      await tx
        .insert(predictionLabels)
        .values(chunk.map((l) => ({ predictionId: l.predictionId, label: String(l.label), labeledAt })))
        .onConflictDoUpdate({ target: predictionLabels.predictionId, set: { label: sql`excluded.label`, labeledAt: sql`excluded.labeled_at` } });
      const [r] = await tx.select({ n: sql<number>`count(*)` }).from(predictions).where(inArray(predictions.predictionId, chunk.map((l) => l.predictionId)));
      matched += r.n;
    }
    await recordAudit(tx, actor, 'labels.record', `${items.length} labels`, { stored: items.length, matched });
    return { stored: items.length, matched };
  });
}

export interface PerformanceBucket {
  start: string;
  end: string;
  predictions: number;
  labeled: number;
  correct: number;
  accuracy: number | null;
}

export interface Performance {
  model: string;
  cohort: string | null;
  metric: 'accuracy';
  window: { start: string; end: string; seconds: number };
  bucketSeconds: number;
  predictions: number;
  labeled: number;
  correct: number;
  accuracy: number | null;
  buckets: PerformanceBucket[];
}

/** Default bucket: 5 minutes up to an hour, an hour up to a day, a day beyond. */
export function defaultBucketSeconds(windowS: number): number {
  return windowS <= 3600 ? 300 : windowS <= 86400 ? 3600 : 86400;
}

/** A cohort's devices: its current members and the devices its deployments reached. */
export async function cohortDeviceIds(tx: Tx, cohort: string): Promise<string[]> {
  const { members } = await cohortMembers(tx, cohort);
  const deployed = await tx.select({ id: deviceDesired.deviceId }).from(deviceDesired).where(eq(deviceDesired.cohort, cohort));
  return [...new Set([...members.map((m) => m.id), ...deployed.map((d) => d.id)])];
}

/**
 * Accuracy per bucket over the window, for a model version and optionally a cohort (the cohort's
 * current members and the devices its deployments reached).
 */
export async function performance(tx: Tx, q: { model: string; cohort?: string; windowS: number; bucketS?: number; end?: Date }): Promise<Performance> {
  const version = await resolveVersion(tx, q.model);
  const end = q.end ?? new Date();
  if (Number.isNaN(end.getTime())) throw Invalid('end must be an ISO 8601 time');
  const bucketS = q.bucketS ?? defaultBucketSeconds(q.windowS);
  const count = Math.ceil(q.windowS / bucketS);
  if (count > 1000) throw Invalid(`${count} buckets: use a larger bucket (at most 1000 per query)`);
  const start = new Date(end.getTime() - q.windowS * 1000);
  const ids = q.cohort !== undefined ? await cohortDeviceIds(tx, q.cohort) : null;
  const p = predictions;
  const l = predictionLabels;
  const bucket = sql<number>`cast((julianday(${p.at}) - julianday(${start.toISOString()})) * 86400 / ${bucketS} as integer)`;
  const rows = await tx
    .select({
      b: bucket,
      n: sql<number>`count(*)`,
      labeled: sql<number>`count(${l.label})`,
      correct: sql<number>`coalesce(sum(${l.label} = ${p.predicted}), 0)`,
    })
    .from(p)
    .leftJoin(l, eq(l.predictionId, p.predictionId))
    .where(
      and(
        eq(p.modelVersionId, version.id),
        sql`${p.at} >= ${start.toISOString()}`,
        sql`${p.at} < ${end.toISOString()}`,
        ids ? sql`${p.deviceId} in (select value from json_each(${JSON.stringify(ids)}))` : undefined,
      ),
    )
    .groupBy(bucket);
  const byBucket = new Map(rows.map((r) => [Number(r.b), r]));
  const buckets: PerformanceBucket[] = [];
  let n = 0;
  let labeled = 0;
  let correct = 0;
  for (let i = 0; i < count; i++) {
    const bs = new Date(start.getTime() + i * bucketS * 1000);
    const be = new Date(Math.min(bs.getTime() + bucketS * 1000, end.getTime()));
    const r = byBucket.get(i);
    const b = { start: bs.toISOString(), end: be.toISOString(), predictions: r?.n ?? 0, labeled: r?.labeled ?? 0, correct: r?.correct ?? 0 };
    n += b.predictions;
    labeled += b.labeled;
    correct += b.correct;
    buckets.push({ ...b, accuracy: b.labeled ? b.correct / b.labeled : null });
  }
  return {
    model: formatRef(version.modelName, version.version),
    cohort: q.cohort ?? null,
    metric: 'accuracy',
    window: { start: start.toISOString(), end: end.toISOString(), seconds: q.windowS },
    bucketSeconds: bucketS,
    predictions: n,
    labeled,
    correct,
    accuracy: labeled ? correct / labeled : null,
    buckets,
  };
}
