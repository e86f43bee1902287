// Drift of one (cohort or whole fleet, model version, window): the rollups of the window merged into
// one sketch and compared with the version's reference profile under the model's DriftConfig.
import { and, eq, gte, lt } from 'drizzle-orm';
import { DriftConfigError, evaluateDrift, type DriftReport, type FeatureDriftResult } from '../../protocol/drift/index.ts';
import { checkSketchAgainstReference } from '../../protocol/messages/stats.ts';
import { createFeatureSetSketch, mergeFeatureSetSketches, type FeatureSetSketch, type QualityCounters } from '../../protocol/sketch/feature-set-sketch.ts';
import { getCohort } from '../cohorts/cohort-service.ts';
import type { Tx } from '../db/client.ts';
import { models, modelVersions, statsRollups } from '../db/schema.ts';
import { Conflict, Invalid, NotFound } from '../errors.ts';
import { queryWindow, type QueryWindow } from '../ingest/buckets.ts';
import { droppedWindows, type DroppedWindows } from '../ingest/stats-drops.ts';
import { FLEET_KEY } from '../ingest/stats-writer.ts';
import { formatRef } from '../models/model-ref.ts';
import { resolveVersion } from '../models/model-service.ts';
import { driftConfigOf } from './drift-config-service.ts';
import { driftHistograms, type FeatureHistogram } from './drift-histograms.ts';
import { referenceHint, referenceOf } from './reference-service.ts';

export interface DriftResult {
  model: string;
  /** null: every device running the version (the fleet). */
  cohort: string | null;
  window: { start: string; end: string; seconds: number; granularity: string; fromBucket: string };
  /** Device windows merged, and the rows they hold. */
  windows: number;
  rows: number;
  referenceRows: number;
  dataset: DriftReport['dataset'];
  features: FeatureDriftResult[];
  outputs: FeatureDriftResult[];
  quality: QualityCounters;
  /** Rollups left out because they were sketched on another layout (a replaced reference). */
  skippedBuckets: number;
  /** Device windows refused against the reference in (the hours of) this window: how many, from how many devices, why, what to do. */
  dropped: DroppedWindows[];
  /** Reference vs live bin counts per feature (only when asked for: `GET /drift?histograms=true`). */
  histograms?: FeatureHistogram[];
}

export interface PairEvaluation {
  result: DriftResult;
  report: DriftReport;
  /** The sketches compared: the reference profile's and the window's merged one. */
  sketches: { reference: FeatureSetSketch; live: FeatureSetSketch };
}

/**
 * Evaluates a version (by id) for a cohort (or the fleet, `cohort = null`) over a window. Throws a
 * 409 naming how to add a reference profile when the version has none.
 */
export async function evaluatePair(tx: Tx, versionId: number, cohort: string | null, window: QueryWindow): Promise<PairEvaluation> {
  const [version] = await tx
    .select({ modelId: modelVersions.modelId, version: modelVersions.version, modelName: models.name })
    .from(modelVersions)
    .innerJoin(models, eq(models.id, modelVersions.modelId))
    .where(eq(modelVersions.id, versionId));
  if (!version) throw NotFound(`model version ${versionId}`);
  const label = formatRef(version.modelName, version.version);
  const reference = await referenceOf(tx, versionId);
  if (!reference) {
    const dropped = await droppedWindows(tx, versionId, window);
    const lost = dropped.find((d) => d.reason === 'no_reference');
    const said = lost ? ` (${lost.windows} window(s) from ${lost.devices} device(s) were dropped for want of it)` : '';
    throw Conflict(`${label} has no reference profile, so there is nothing to compare with${said}: ${referenceHint(label)}`, { hint: referenceHint(label), dropped });
  }

  const t = statsRollups;
  const rows = await tx
    .select({ sketch: t.sketch, windows: t.windows })
    .from(t)
    .where(
      and(
        eq(t.scope, cohort === null ? 'fleet' : 'cohort'),
        eq(t.key, cohort ?? FLEET_KEY),
        eq(t.modelVersionId, versionId),
        eq(t.granularity, window.granularity),
        gte(t.bucketStart, window.fromBucket),
        lt(t.bucketStart, window.end),
      ),
    );
  let merged: FeatureSetSketch | null = null;
  let windows = 0;
  let skipped = 0;
  for (const r of rows) {
    if (checkSketchAgainstReference(r.sketch, reference.layout)) {
      skipped++;
      continue;
    }
    merged = merged ? mergeFeatureSetSketches(merged, r.sketch) : r.sketch;
    windows += r.windows;
  }
  const current = merged ?? createFeatureSetSketch(reference.layout);
  let report: DriftReport;
  try {
    report = evaluateDrift(reference.sketch, current, await driftConfigOf(tx, version.modelId));
  } catch (err) {
    if (err instanceof DriftConfigError) throw Invalid(`the drift config of ${version.modelName} does not fit ${label}: ${err.message}; fix it with PUT /api/v1/models/${version.modelName}/drift-config`);
    throw err;
  }
  return {
    report,
    sketches: { reference: reference.sketch, live: current },
    result: {
      model: label,
      cohort,
      window: { start: window.start, end: window.end, seconds: window.seconds, granularity: window.granularity, fromBucket: window.fromBucket },
      windows,
      rows: current.quality.rows,
      referenceRows: report.referenceRows,
      dataset: report.dataset,
      features: report.features,
      outputs: report.outputs,
      quality: current.quality,
      skippedBuckets: skipped,
      dropped: await droppedWindows(tx, versionId, window),
    },
  };
}

/** `GET /drift`: resolves the model ref and the cohort, then evaluates. */
export async function queryDrift(tx: Tx, q: { model: string; cohort?: string; windowS: number; end?: Date; histograms?: boolean }): Promise<DriftResult> {
  const version = await resolveVersion(tx, q.model);
  if (q.cohort !== undefined) await getCohort(tx, q.cohort);
  if (q.end && Number.isNaN(q.end.getTime())) throw Invalid('end must be an ISO 8601 time');
  const pair = await evaluatePair(tx, version.id, q.cohort ?? null, queryWindow(q.windowS, q.end));
  return q.histograms ? { ...pair.result, histograms: driftHistograms(pair.sketches.reference, pair.sketches.live) } : pair.result;
}
