// Training jobs as rows: enqueueing (from a schedule, a drift alert or a person), views, logs and
// cancellation. State changes are conditional updates on `status`, so two replicas (or a runner and
// a cancel request) never both move the same job.
import { and, asc, desc, eq, gt, inArray, isNull, sql } from 'drizzle-orm';
import { recordAudit } from '../audit/audit-log.ts';
import { recordJobEvent } from '../events/job-events.ts';
import { randomId } from '../auth/secrets.ts';
import type { Db, Tx } from '../db/client.ts';
import { datasets, datasetVersions, jobLogs, jobs, modelAliases, models, modelVersions, rollouts } from '../db/schema.ts';
import { Conflict, NotFound } from '../errors.ts';
import { formatRef } from '../models/model-ref.ts';
import { modelByName, policyOf, redactTrainer, type PolicyInput } from './retrain-policy.ts';

export type JobRow = typeof jobs.$inferSelect;
export type JobStatus = JobRow['status'];
export const FINAL_STATUSES: ReadonlySet<JobStatus> = new Set(['succeeded', 'failed', 'cancelled']);

export interface JobTrigger {
  kind: 'cron' | 'drift' | 'manual';
  alertId?: string;
  cohort?: string;
  by?: string;
}

/** What the runner needs from the policy, frozen at enqueue time so a later policy edit does not change a queued job. */
export interface JobParams {
  data: PolicyInput['data'];
  after: PolicyInput['after'];
}

export interface JobView {
  id: string;
  model: string;
  status: JobStatus;
  trigger: JobTrigger;
  trainer: Record<string, unknown>;
  parent: string | null;
  dataset: string | null;
  result: string | null;
  rollout: string | null;
  attempt: number;
  maxAttempts: number;
  timeoutS: number;
  runner: string | null;
  heartbeatAt: string | null;
  metrics: Record<string, unknown> | null;
  error: string | null;
  cancelRequested: boolean;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** The version a job trains from when nothing more specific is known: the champion, else the newest non-variant version. */
export async function defaultParent(tx: Tx, modelId: number): Promise<number | null> {
  const champion = await tx.query.modelAliases.findFirst({ where: and(eq(modelAliases.modelId, modelId), eq(modelAliases.alias, 'champion')) });
  if (champion) return champion.versionId;
  const newest = await tx.query.modelVersions.findFirst({ where: and(eq(modelVersions.modelId, modelId), isNull(modelVersions.variant)), orderBy: desc(modelVersions.version) });
  return newest?.id ?? null;
}

export async function enqueueJob(
  tx: Tx,
  input: { modelId: number; policy: PolicyInput; trigger: JobTrigger; parentVersionId?: number | null; actor: string },
): Promise<string> {
  const id = randomId('job', 8);
  const parentVersionId = input.parentVersionId ?? (await defaultParent(tx, input.modelId));
  const params: JobParams = { data: input.policy.data, after: input.policy.after };
  await tx.insert(jobs).values({
    id,
    modelId: input.modelId,
    status: 'queued',
    trigger: input.trigger as unknown as Record<string, unknown>,
    trainer: input.policy.trainer,
    params: params as unknown as Record<string, unknown>,
    parentVersionId,
    maxAttempts: input.policy.maxAttempts,
    timeoutS: input.policy.timeoutS,
  });
  await recordAudit(tx, input.actor, 'job.create', id, { trigger: input.trigger, trainer: input.policy.trainer.kind });
  await recordJobEvent(tx, id, 'queued', { trigger: input.trigger.kind });
  return id;
}

/** `flotilla retrain <model> --now`: a job from the model's policy (enabled or not), now. */
export async function startManualJob(db: Db, modelName: string, actor: string): Promise<JobView> {
  const id = await db.transaction(async (tx) => {
    const model = await modelByName(tx, modelName);
    const row = await tx.query.retrainPolicies.findFirst({ where: (p, { eq: e }) => e(p.modelId, model.id) });
    if (!row) throw Conflict(`"${modelName}" has no retraining policy: set one with \`flotilla retrain ${modelName} --policy policy.json\``);
    return enqueueJob(tx, { modelId: model.id, policy: policyOf(row), trigger: { kind: 'manual', by: actor }, actor });
  });
  return getJob(db, id);
}

async function versionRefs(tx: Tx, ids: number[]): Promise<Map<number, string>> {
  if (!ids.length) return new Map();
  const rows = await tx
    .select({ id: modelVersions.id, name: models.name, version: modelVersions.version })
    .from(modelVersions)
    .innerJoin(models, eq(models.id, modelVersions.modelId))
    .where(inArray(modelVersions.id, ids));
  return new Map(rows.map((r) => [r.id, formatRef(r.name, r.version)]));
}

async function datasetRefs(tx: Tx, ids: number[]): Promise<Map<number, string>> {
  if (!ids.length) return new Map();
  const rows = await tx
    .select({ id: datasetVersions.id, name: datasets.name, version: datasetVersions.version })
    .from(datasetVersions)
    .innerJoin(datasets, eq(datasets.id, datasetVersions.datasetId))
    .where(inArray(datasetVersions.id, ids));
  return new Map(rows.map((r) => [r.id, `${r.name}@${r.version}`]));
}

async function toViews(tx: Tx, rows: JobRow[]): Promise<JobView[]> {
  const modelNames = new Map((await tx.select({ id: models.id, name: models.name }).from(models).where(inArray(models.id, [...new Set(rows.map((r) => r.modelId))]))).map((m) => [m.id, m.name]));
  const versions = await versionRefs(tx, [...new Set(rows.flatMap((r) => [r.parentVersionId, r.resultVersionId]).filter((x): x is number => x != null))]);
  const sets = await datasetRefs(tx, [...new Set(rows.map((r) => r.datasetVersionId).filter((x): x is number => x != null))]);
  const rolloutRows = rows.length ? await tx.select({ id: rollouts.id, jobId: rollouts.jobId }).from(rollouts).where(inArray(rollouts.jobId, rows.map((r) => r.id))) : [];
  return rows.map((r) => ({
    id: r.id,
    model: modelNames.get(r.modelId) ?? String(r.modelId),
    status: r.status,
    trigger: r.trigger as unknown as JobTrigger,
    trainer: redactTrainer(r.trainer),
    parent: r.parentVersionId ? versions.get(r.parentVersionId) ?? null : null,
    dataset: r.datasetVersionId ? sets.get(r.datasetVersionId) ?? null : null,
    result: r.resultVersionId ? versions.get(r.resultVersionId) ?? null : null,
    rollout: rolloutRows.find((x) => x.jobId === r.id)?.id ?? null,
    attempt: r.attempt,
    maxAttempts: r.maxAttempts,
    timeoutS: r.timeoutS,
    runner: r.runner,
    heartbeatAt: r.heartbeatAt,
    metrics: r.metrics ?? null,
    error: r.error,
    cancelRequested: r.cancelRequested,
    createdAt: r.createdAt,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
  }));
}

export async function getJobRow(tx: Tx, id: string): Promise<JobRow> {
  const row = await tx.query.jobs.findFirst({ where: eq(jobs.id, id) });
  if (!row) throw NotFound(`job "${id}"`, { hint: 'list jobs with `flotilla jobs ls`' });
  return row;
}

export async function getJob(tx: Tx, id: string): Promise<JobView> {
  return (await toViews(tx, [await getJobRow(tx, id)]))[0];
}

export async function listJobs(db: Db, filter: { model?: string; status?: JobStatus; limit: number; offset?: number }): Promise<JobView[]> {
  const where = [];
  if (filter.model) where.push(eq(jobs.modelId, (await modelByName(db, filter.model)).id));
  if (filter.status) where.push(eq(jobs.status, filter.status));
  const rows = await db.select().from(jobs).where(where.length ? and(...where) : undefined).orderBy(desc(jobs.createdAt), desc(jobs.id)).limit(filter.limit)
    .offset(filter.offset ?? 0);
  return toViews(db, rows);
}

export async function listJobLogs(db: Db, id: string, opts: { after?: number; limit: number }) {
  await getJobRow(db, id);
  const rows = await db
    .select({ id: jobLogs.id, at: jobLogs.at, stream: jobLogs.stream, line: jobLogs.line })
    .from(jobLogs)
    .where(and(eq(jobLogs.jobId, id), opts.after !== undefined ? gt(jobLogs.id, opts.after) : undefined))
    .orderBy(asc(jobLogs.id))
    .limit(opts.limit);
  return rows;
}

/**
 * Cancels a job: a queued or waiting one at once; a running one is flagged, and its runner kills the
 * trainer at its next heartbeat and marks it cancelled. A finished job cannot be cancelled (409).
 */
export async function cancelJob(db: Db, id: string, actor: string): Promise<JobView> {
  await db.transaction(async (tx) => {
    const row = await getJobRow(tx, id);
    if (FINAL_STATUSES.has(row.status)) throw Conflict(`job ${id} already ${row.status}`);
    const now = new Date().toISOString();
    const direct = await tx
      .update(jobs)
      .set({ status: 'cancelled', cancelRequested: true, finishedAt: now, error: `cancelled by ${actor}`, uploadTokenHash: null })
      .where(and(eq(jobs.id, id), inArray(jobs.status, ['queued', 'waiting'])))
      .returning({ id: jobs.id });
    if (!direct.length) await tx.update(jobs).set({ cancelRequested: true }).where(and(eq(jobs.id, id), eq(jobs.status, 'running')));
    await recordAudit(tx, actor, 'job.cancel', id, { status: direct.length ? 'cancelled' : 'cancel requested' });
    // A running job is cancelled by its runner (job-runner.ts), which records that event.
    if (direct.length) await recordJobEvent(tx, id, 'cancelled');
  });
  return getJob(db, id);
}

/** Jobs already started for a drift alert (any status): the drift trigger starts at most one per alert. */
export async function jobExistsForAlert(tx: Tx, alertId: string): Promise<boolean> {
  const rows = await tx.select({ id: jobs.id }).from(jobs).where(sql`json_extract(${jobs.trigger}, '$.alertId') = ${alertId}`).limit(1);
  return rows.length > 0;
}
