// Captured samples as training rows, for the continuous-training jobs (server/jobs/): the inputs a device
// saw, what the model answered, and the ground-truth label when one was fed back for the sample's
// prediction id (POST /api/v1/labels, server/ground-truth/).
import { and, asc, desc, eq, gte, sql } from 'drizzle-orm';
import type { Tx } from '../db/client.ts';
import { capturedSamples, models, modelVersions, predictionLabels } from '../db/schema.ts';
import { cohortDeviceIds } from '../ground-truth/ground-truth-service.ts';
import { isoUtc } from '../ingest/buckets.ts';

export interface SnapshotQuery {
  /** Every version of this model. */
  modelName: string;
  /** Only samples taken at or after this time (ISO 8601). */
  since?: string;
  /** Only samples from devices of this cohort (current members and devices its deployments reached). */
  cohort?: string;
  /** Attach `label` to samples whose prediction id has one; unlabeled samples are returned either way. */
  withLabels: boolean;
  /** Only the newest this many samples (still returned oldest first): bounded reads for evaluation. */
  latest?: number;
}

export interface SnapshotRow {
  deviceId: string;
  /** The device's id for the sample (unique per device). */
  sampleId: string;
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
  label?: string;
  at: string;
}

/** Captured samples of a model, oldest first. Unknown cohort → NotFound. */
export async function snapshotSamples(db: Tx, q: SnapshotQuery): Promise<SnapshotRow[]> {
  const s = capturedSamples;
  const ids = q.cohort !== undefined ? await cohortDeviceIds(db, q.cohort) : null;
  const query = db
    .select({ deviceId: s.deviceId, sampleId: s.sampleId, inputs: s.inputs, outputs: s.outputs, at: s.at, label: predictionLabels.label })
    .from(s)
    .innerJoin(modelVersions, eq(modelVersions.id, s.modelVersionId))
    .innerJoin(models, eq(models.id, modelVersions.modelId))
    .leftJoin(predictionLabels, eq(predictionLabels.predictionId, s.predictionId))
    .where(
      and(
        eq(models.name, q.modelName),
        q.since !== undefined ? gte(s.at, isoUtc(q.since)) : undefined,
        ids ? sql`${s.deviceId} in (select value from json_each(${JSON.stringify(ids)}))` : undefined,
      ),
    )
    .$dynamic();
  const rows = q.latest !== undefined ? (await query.orderBy(desc(s.at), desc(s.id)).limit(q.latest)).reverse() : await query.orderBy(asc(s.at), asc(s.id));
  return rows.map((r) => ({
    deviceId: r.deviceId,
    sampleId: r.sampleId,
    inputs: r.inputs as Record<string, unknown>,
    outputs: (r.outputs ?? {}) as Record<string, unknown>,
    ...(q.withLabels && r.label != null ? { label: r.label } : {}),
    at: r.at,
  }));
}
