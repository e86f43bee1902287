// Closing the loop on drift: an alert on (cohort, v1) cannot recover by itself once the cohort runs v2,
// because v1 gets no more statistics. When a rollout of a newer version of the same model finished on
// the alert's cohort after the alert opened, and a drift evaluation of (cohort, v2) since then had data
// and found no drifted feature, the v1 alert is closed as resolved (audited like any close, and sent to
// the alert webhook).
import { and, desc, eq, gt } from 'drizzle-orm';
import { applyDriftVerdict, type AlertView } from '../alerts/alert-service.ts';
import type { Db } from '../db/client.ts';
import { alerts, bundles, driftEvaluations, models, modelVersions, rollouts } from '../db/schema.ts';
import { formatRef } from '../models/model-ref.ts';

/** `notify`: enqueue each close for the alert webhook in its transaction. */
export async function resolveSupersededAlerts(db: Db, now = new Date(), notify = false): Promise<AlertView[]> {
  const open = await db
    .select({ alert: alerts, modelId: modelVersions.modelId, version: modelVersions.version, model: models.name })
    .from(alerts)
    .innerJoin(modelVersions, eq(modelVersions.id, alerts.modelVersionId))
    .innerJoin(models, eq(models.id, modelVersions.modelId))
    .where(and(eq(alerts.kind, 'drift'), eq(alerts.status, 'open')));
  const closed: AlertView[] = [];
  for (const { alert, modelId, version, model } of open) {
    const [done] = await db
      .select({ finishedAt: rollouts.updatedAt, versionId: bundles.modelVersionId, modelId: modelVersions.modelId })
      .from(rollouts)
      .innerJoin(bundles, eq(bundles.id, rollouts.bundleId))
      .innerJoin(modelVersions, eq(modelVersions.id, bundles.modelVersionId))
      .where(and(eq(rollouts.cohort, alert.cohort), eq(rollouts.status, 'succeeded'), gt(rollouts.updatedAt, alert.openedAt)))
      .orderBy(desc(rollouts.updatedAt))
      .limit(1);
    if (!done || done.modelId !== modelId || done.versionId === alert.modelVersionId || !done.finishedAt) continue;
    const [evaluation] = await db
      .select()
      .from(driftEvaluations)
      .where(and(eq(driftEvaluations.cohort, alert.cohort), eq(driftEvaluations.modelVersionId, done.versionId), gt(driftEvaluations.at, done.finishedAt)))
      .orderBy(desc(driftEvaluations.at))
      .limit(1);
    if (!evaluation || evaluation.verdict === 'insufficient_data' || evaluation.driftedFeatures.length) continue;
    const result = await db.transaction((tx) =>
      applyDriftVerdict(
        tx,
        { cohort: alert.cohort, modelVersionId: alert.modelVersionId, model: formatRef(model, version), drifted: [], evaluated: true, window: { start: evaluation.windowStart, end: evaluation.windowEnd }, notify },
        now,
      ),
    );
    if (result.transition === 'closed' && result.alert) closed.push(result.alert);
  }
  return closed;
}
