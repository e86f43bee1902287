// Captured samples: batches a device uploads while its signed settings turn capture on, and the
// read-out for ML engineers. A device may only send samples of the model version it was given, at
// most at its capped rate; a resent sample (same device and sampleId) is stored once.
import { and, desc, eq, gte, inArray, lt, sql } from 'drizzle-orm';
import type { SampleBatch } from '../../protocol/messages/samples.ts';
import type { Db, Tx } from '../db/client.ts';
import { bundles, capturedSamples, deviceDesired, models, modelVersions, predictionLabels } from '../db/schema.ts';
import { Conflict, Invalid, NotFound, ServiceError } from '../errors.ts';
import { cohortDeviceIds } from '../ground-truth/ground-truth-service.ts';
import { isoUtc } from '../ingest/buckets.ts';
import { formatRef, parseModelRef } from '../models/model-ref.ts';
import { resolveVersion } from '../models/model-service.ts';
import { effectiveAgentConfigs } from '../settings/effective-settings.ts';
import { SampleRateLimit } from './sample-rate-limit.ts';

const CHUNK = 100;

export class RateLimited extends ServiceError {
  constructor(readonly retryAfterS: number) {
    super('rate_limited', `sample upload rate exceeded: retry in ${retryAfterS} s`, { retryAfterS });
  }
}

/** Stores one batch from `deviceId` (authenticated) in one transaction; see the file comment for the checks. */
export async function storeSamples(db: Db, limit: SampleRateLimit, deviceId: string, batch: SampleBatch): Promise<{ accepted: number; duplicates: number }> {
  return db.transaction(async (tx) => {
    const desired = await tx
      .select({ cohort: deviceDesired.cohort, bundleId: deviceDesired.bundleId, modelVersionId: modelVersions.id, model: models.name, version: modelVersions.version })
      .from(deviceDesired)
      .innerJoin(bundles, eq(bundles.id, deviceDesired.bundleId))
      .innerJoin(modelVersions, eq(modelVersions.id, bundles.modelVersionId))
      .innerJoin(models, eq(models.id, modelVersions.modelId))
      .where(eq(deviceDesired.deviceId, deviceId))
      .then((r) => r[0]);
    const { config } = (await effectiveAgentConfigs(tx, [{ deviceId, cohort: desired?.cohort ?? null }])).get(deviceId)!;
    if (!config.sampleCapture.enabled) throw new ServiceError('capture_disabled', `sample capture is not enabled for device ${deviceId}`);
    if (!desired) throw Conflict(`device ${deviceId} has no deployment: no model version to take samples of`);
    const named = formatRef(batch.model.name, batch.model.version);
    if (batch.model.name !== desired.model || batch.model.version !== desired.version) {
      throw Conflict(`samples are for ${named}, but device ${deviceId} was given ${formatRef(desired.model, desired.version)}`, { given: formatRef(desired.model, desired.version) });
    }
    const capacity = SampleRateLimit.capacity(config.sampleCapture.maxPerMinute, config.sampleCapture.batchSize);
    if (batch.samples.length > capacity) throw Invalid(`a batch of ${batch.samples.length} samples is over this device's cap of ${capacity}: send batches of at most ${config.sampleCapture.batchSize}`);
    const retryAfterS = limit.take(deviceId, batch.samples.length, config.sampleCapture);
    if (retryAfterS > 0) throw new RateLimited(retryAfterS);
    const receivedAt = new Date().toISOString();
    const rows = batch.samples.map((s) => ({
      deviceId,
      modelVersionId: desired.modelVersionId,
      sampleId: s.sampleId,
      predictionId: s.predictionId ?? null,
      at: isoUtc(s.at),
      inputs: s.inputs,
      outputs: s.outputs,
      receivedAt,
    }));
    let accepted = 0;
    for (let i = 0; i < rows.length; i += CHUNK) {
      accepted += (await tx.insert(capturedSamples).values(rows.slice(i, i + CHUNK)).onConflictDoNothing().returning({ id: capturedSamples.id })).length;
    }
    return { accepted, duplicates: rows.length - accepted };
  });
}

export interface SampleView {
  id: number;
  deviceId: string;
  model: string;
  sampleId: string;
  predictionId: string | null;
  at: string;
  receivedAt: string;
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
  label: string | null;
}

/** Samples of a model (every version for `name`, one for `name@N` or `name@alias`), newest first. */
export async function listSamples(db: Tx, q: { model: string; cohort?: string; since?: string; limit: number; offset?: number }): Promise<SampleView[]> {
  const ref = parseModelRef(q.model);
  const versionId = 'latest' in ref.selector ? null : (await resolveVersion(db, q.model)).id;
  if (versionId === null && !(await db.query.models.findFirst({ where: eq(models.name, ref.name) }))) throw NotFound(`model "${ref.name}"`);
  const ids = q.cohort !== undefined ? await cohortDeviceIds(db, q.cohort) : null;
  const s = capturedSamples;
  const rows = await db
    .select({
      id: s.id,
      deviceId: s.deviceId,
      model: models.name,
      version: modelVersions.version,
      sampleId: s.sampleId,
      predictionId: s.predictionId,
      at: s.at,
      receivedAt: s.receivedAt,
      inputs: s.inputs,
      outputs: s.outputs,
      label: predictionLabels.label,
    })
    .from(s)
    .innerJoin(modelVersions, eq(modelVersions.id, s.modelVersionId))
    .innerJoin(models, eq(models.id, modelVersions.modelId))
    .leftJoin(predictionLabels, eq(predictionLabels.predictionId, s.predictionId))
    .where(
      and(
        versionId !== null ? eq(s.modelVersionId, versionId) : eq(models.name, ref.name),
        q.since !== undefined ? gte(s.at, isoUtc(q.since)) : undefined,
        ids ? sql`${s.deviceId} in (select value from json_each(${JSON.stringify(ids)}))` : undefined,
      ),
    )
    .orderBy(desc(s.at), desc(s.id))
    .limit(q.limit)
    .offset(q.offset ?? 0);
  return rows.map(({ model, version, inputs, outputs, ...r }) => ({
    ...r,
    model: formatRef(model, version),
    inputs: inputs as Record<string, unknown>,
    outputs: (outputs ?? {}) as Record<string, unknown>,
  }));
}

/** Deletes samples taken before the retention horizon, in slices so the write lock is never held long. */
export async function deleteExpiredSamples(db: Db, retentionDays: number, now = new Date()): Promise<number> {
  const cutoff = new Date(now.getTime() - retentionDays * 86_400_000).toISOString();
  let total = 0;
  for (;;) {
    const ids = db.select({ id: capturedSamples.id }).from(capturedSamples).where(lt(capturedSamples.at, cutoff)).limit(5000);
    const n = (await db.delete(capturedSamples).where(inArray(capturedSamples.id, ids)).returning({ id: capturedSamples.id })).length;
    total += n;
    if (n < 5000) return total;
  }
}
