// Drift-triggered retraining: for every enabled policy with `driftOpenForS`, each drift alert on one
// of the model's versions that has stayed open that long starts exactly one job (parent = the version
// the alert is about, cohort = the alert's cohort). A job with the alert's id in its trigger, in any
// state, means that alert already had its job.
import { and, eq, inArray, isNotNull, lte } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { alerts, modelVersions, retrainPolicies } from '../db/schema.ts';
import { enqueueJob, jobExistsForAlert } from './job-service.ts';
import { JOB_ACTOR } from './job-result.ts';
import { policyOf } from './retrain-policy.ts';

export async function triggerDriftJobs(db: Db, now = new Date()): Promise<string[]> {
  const policies = await db
    .select()
    .from(retrainPolicies)
    .where(and(eq(retrainPolicies.enabled, true), isNotNull(retrainPolicies.driftOpenForS)));
  const started: string[] = [];
  for (const p of policies) {
    const openedBefore = new Date(now.getTime() - p.driftOpenForS! * 1000).toISOString();
    const versionIds = (await db.select({ id: modelVersions.id }).from(modelVersions).where(eq(modelVersions.modelId, p.modelId))).map((v) => v.id);
    if (!versionIds.length) continue;
    const due = await db
      .select()
      .from(alerts)
      .where(and(eq(alerts.kind, 'drift'), eq(alerts.status, 'open'), inArray(alerts.modelVersionId, versionIds), lte(alerts.openedAt, openedBefore)));
    for (const alert of due) {
      const id = await db.transaction(async (tx) => {
        if (await jobExistsForAlert(tx, alert.id)) return null;
        return enqueueJob(tx, {
          modelId: p.modelId,
          policy: policyOf(p),
          trigger: { kind: 'drift', alertId: alert.id, cohort: alert.cohort },
          parentVersionId: alert.modelVersionId,
          actor: JOB_ACTOR,
        });
      });
      if (id) started.push(id);
    }
  }
  return started;
}
