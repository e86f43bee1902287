// Runs training jobs on this replica (only the lease holder claims jobs). A job is claimed with a
// conditional update (queued → running), heartbeats while it runs (which is also how a cancel
// request reaches it), snapshots its data once, and tries its trainer up to maxAttempts times with
// exponential backoff, each attempt bounded by the job's timeout (the child process is killed or the
// worker terminated). A webhook trainer leaves the job `waiting` until the pipeline uploads the model.
//
// Restarts: a job whose heartbeat is older than `staleMs` lost its runner (a crash, a kill -9, a
// replica that died). `recover()` puts it back in the queue when attempts are left, else fails it;
// a cancel requested meanwhile wins. A clean stop hands running jobs back to the queue at once
// without charging the interrupted attempt.
import { timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { and, asc, eq, inArray, isNull, lt, or } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { ArtifactStore, StagedUpload } from '../artifacts/artifact-store.ts';
import { recordAudit } from '../audit/audit-log.ts';
import { recordJobEvent } from '../events/job-events.ts';
import { sha256Hex } from '../auth/secrets.ts';
import type { Db } from '../db/client.ts';
import { datasets, datasetVersions, jobs, models, modelVersions } from '../db/schema.ts';
import { getDatasetVersion, type DatasetVersionView } from '../datasets/dataset-service.ts';
import type { DesiredState } from '../deployments/desired-state.ts';
import { Conflict, ServiceError, Unauthorized } from '../errors.ts';
import { InvalidOnnxError, inspectOnnx } from '../onnx/inspect.ts';
import { getJob, type JobParams, type JobRow, type JobTrigger, type JobView } from './job-service.ts';
import { JobLog } from './job-log.ts';
import { JOB_ACTOR, publishResult } from './job-result.ts';
import { Trainer } from './retrain-policy.ts';
import { materialize, snapshotData } from './snapshot.ts';
import { runBuiltinTrainer } from './trainers/builtin-trainer.ts';
import { runCommandTrainer } from './trainers/command-trainer.ts';
import type { TrainerContext, TrainerResult } from './trainers/trainer.ts';
import { runWebhookTrainer } from './trainers/webhook-trainer.ts';

export interface JobRunnerOptions {
  db: Db;
  store: ArtifactStore;
  desired: DesiredState;
  logger: Logger;
  /** Scratch folders live under <dataDir>/jobs/<id> while a job runs. */
  dataDir: string;
  /** This replica's identity in jobs.runner. */
  holder: string;
  /** Base URL external pipelines reach the API on (webhook trainer). */
  serverUrl: () => string;
  maxUploadBytes: number;
  heartbeatMs: number;
  /** A running job whose heartbeat is older than this lost its runner. */
  staleMs: number;
  /** First retry delay; doubles per attempt, at most a minute. */
  retryBackoffMs: number;
  concurrency: number;
}

class Cancelled extends Error {}
class Shutdown extends Error {}
/** Another replica took the job over (our heartbeats stopped reaching the database in time). */
class Lost extends Error {}

export class JobRunner {
  private readonly active = new Map<string, { controller: AbortController; done: Promise<void> }>();
  private stopping = false;

  constructor(private readonly opts: JobRunnerOptions) {}

  get runningJobs(): string[] {
    return [...this.active.keys()];
  }

  /** Claims queued jobs (oldest first) up to the concurrency limit and runs them in the background. */
  async pump(): Promise<void> {
    const { db, holder } = this.opts;
    while (!this.stopping && this.active.size < this.opts.concurrency) {
      const next = await db.query.jobs.findFirst({ where: eq(jobs.status, 'queued'), orderBy: [asc(jobs.createdAt), asc(jobs.id)] });
      if (!next) return;
      const now = new Date().toISOString();
      const claimed = await db.transaction(async (tx) => {
        const [row] = await tx
          .update(jobs)
          .set({ status: 'running', runner: holder, heartbeatAt: now, startedAt: next.startedAt ?? now })
          .where(and(eq(jobs.id, next.id), eq(jobs.status, 'queued')))
          .returning();
        if (row) await recordJobEvent(tx, row.id, 'running', { attempt: row.attempt + 1 });
        return row;
      });
      if (!claimed) continue; // someone else (a cancel, a peer) got there first
      const controller = new AbortController();
      const done = this.execute(claimed, controller).finally(() => this.active.delete(claimed.id));
      this.active.set(claimed.id, { controller, done });
    }
  }

  /** Aborts running trainers and hands their jobs back to the queue. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const { controller } of this.active.values()) controller.abort(new Shutdown('control plane stopping'));
    await Promise.allSettled([...this.active.values()].map((a) => a.done));
  }

  /**
   * Jobs whose runner is gone (heartbeat older than staleMs) and waiting jobs whose upload did not come
   * within their timeout: back to the queue when attempts are left, else failed.
   */
  async recover(now = new Date()): Promise<void> {
    const { db, staleMs } = this.opts;
    const staleBefore = new Date(now.getTime() - staleMs).toISOString();
    const stale = await db
      .select()
      .from(jobs)
      .where(and(eq(jobs.status, 'running'), or(isNull(jobs.heartbeatAt), lt(jobs.heartbeatAt, staleBefore))));
    for (const job of stale) {
      if (this.active.has(job.id)) continue;
      await this.requeueOrFail(job, `runner ${job.runner ?? '?'} stopped (last heartbeat ${job.heartbeatAt ?? 'never'})`);
    }
    const waiting = await db.select().from(jobs).where(eq(jobs.status, 'waiting'));
    for (const job of waiting) {
      const since = Date.parse(job.heartbeatAt ?? job.startedAt ?? job.createdAt);
      if (now.getTime() - since > job.timeoutS * 1000) await this.requeueOrFail(job, `no model uploaded within ${job.timeoutS} s`);
    }
  }

  private async requeueOrFail(job: JobRow, why: string): Promise<void> {
    const at = new Date().toISOString();
    const outcome = job.cancelRequested ? 'cancelled' : job.attempt < job.maxAttempts ? 'queued' : 'failed';
    await this.opts.db.transaction(async (tx) => {
      const changed = await tx
        .update(jobs)
        .set(
          outcome === 'queued'
            ? { status: 'queued', runner: null, uploadTokenHash: null, error: `${why}; queued again` }
            : { status: outcome, uploadTokenHash: null, finishedAt: at, error: outcome === 'cancelled' ? 'cancelled' : `${why}; no attempts left` },
        )
        .where(and(eq(jobs.id, job.id), eq(jobs.status, job.status), job.heartbeatAt ? eq(jobs.heartbeatAt, job.heartbeatAt) : isNull(jobs.heartbeatAt)))
        .returning({ id: jobs.id });
      if (changed.length) {
        await recordAudit(tx, JOB_ACTOR, outcome === 'queued' ? 'job.requeue' : `job.${outcome}`, job.id, { reason: why, attempt: job.attempt });
        await recordJobEvent(tx, job.id, outcome, { reason: why });
      }
    });
    this.opts.logger.warn({ job: job.id, outcome }, why);
  }

  private async execute(job: JobRow, controller: AbortController): Promise<void> {
    const { db, logger, holder, heartbeatMs } = this.opts;
    const log = new JobLog(db, job.id, logger);
    const workDir = path.join(this.opts.dataDir, 'jobs', job.id);
    const heartbeat = setInterval(() => void this.heartbeat(job.id, controller), heartbeatMs);
    let attempt = job.attempt;
    let inAttempt = false;
    try {
      const modelName = await this.modelName(job.modelId);
      const trainer = Trainer.parse(job.trainer);
      const trigger = job.trigger as unknown as JobTrigger;
      log.write('runner', `job started on ${holder} (${trigger.kind}${trigger.alertId ? `, alert ${trigger.alertId}` : ''}), trainer ${trainer.kind}`);
      await mkdir(workDir, { recursive: true });
      const dataset = await this.datasetOf(job, modelName, trigger, log);
      const datasetPath = await materialize(db, this.opts.store, dataset, path.join(workDir, 'data'));
      const parentModelPath = await this.parentModel(job, workDir);
      for (;;) {
        attempt++;
        await db.update(jobs).set({ attempt, error: null }).where(and(eq(jobs.id, job.id), eq(jobs.runner, holder), eq(jobs.status, 'running')));
        log.write('runner', `attempt ${attempt} of ${job.maxAttempts} (timeout ${job.timeoutS} s)`);
        const timeout = AbortSignal.timeout(job.timeoutS * 1000);
        const attemptDir = path.join(workDir, `attempt-${attempt}`);
        await mkdir(attemptDir, { recursive: true });
        const ctx: TrainerContext = {
          jobId: job.id,
          modelName,
          attempt,
          workDir: attemptDir,
          datasetPath,
          datasetKind: dataset.kind,
          parentModelPath,
          outputPath: path.join(attemptDir, 'model.onnx'),
          signal: AbortSignal.any([controller.signal, timeout]),
          log: (stream, line) => log.write(stream, line),
        };
        let result: TrainerResult;
        inAttempt = true;
        try {
          result = await this.train(trainer, ctx);
          if (result.kind === 'model') checkOnnx(await readFile(ctx.outputPath));
        } catch (err) {
          if (controller.signal.aborted) throw controller.signal.reason;
          const why = timeout.aborted ? `timed out after ${job.timeoutS} s` : (err as Error).message;
          log.write('runner', `attempt ${attempt} failed: ${why}`);
          if (attempt >= job.maxAttempts) throw new Error(`failed after ${attempt} attempt(s): ${why}`);
          const delay = Math.min(60_000, this.opts.retryBackoffMs * 2 ** (attempt - 1));
          log.write('runner', `retrying in ${(delay / 1000).toFixed(1)} s`);
          await sleep(delay, undefined, { signal: controller.signal }).catch(() => {
            throw controller.signal.reason;
          });
          continue;
        } finally {
          inAttempt = false;
        }
        if (result.kind === 'waiting') {
          const moved = await db.transaction(async (tx) => {
            const rows = await tx
              .update(jobs)
              .set({ status: 'waiting', uploadTokenHash: result.uploadTokenHash, heartbeatAt: new Date().toISOString() })
              .where(and(eq(jobs.id, job.id), eq(jobs.runner, holder), eq(jobs.status, 'running')))
              .returning({ id: jobs.id });
            if (rows.length) await recordJobEvent(tx, job.id, 'waiting');
            return rows;
          });
          if (moved.length) log.write('runner', `waiting for the pipeline's upload (up to ${job.timeoutS} s)`);
          return;
        }
        const staged = await this.opts.store.stage(createReadStream(ctx.outputPath), { maxBytes: this.opts.maxUploadBytes });
        const published = await publishResult(this.opts, { job: { ...job, attempt }, modelName, staged, dataset, metrics: result.metrics, params: { ...result.params, attempt }, log: (l) => log.write('runner', l) });
        await this.finish(job.id, 'succeeded', null, { version: published.version, rollout: published.rolloutId });
        log.write('runner', `succeeded: ${published.version}`);
        return;
      }
    } catch (err) {
      if (err instanceof Lost) {
        log.write('runner', 'another replica took this job over; stopping here');
      } else if (err instanceof Shutdown) {
        // Not the trainer's fault: the interrupted attempt is not charged.
        await db.transaction(async (tx) => {
          const rows = await tx
            .update(jobs)
            .set({ status: 'queued', runner: null, attempt: inAttempt ? Math.max(0, attempt - 1) : attempt })
            .where(and(eq(jobs.id, job.id), eq(jobs.runner, holder), eq(jobs.status, 'running')))
            .returning({ id: jobs.id });
          if (rows.length) await recordJobEvent(tx, job.id, 'queued', { reason: 'control plane stopping' });
        });
        log.write('runner', 'control plane stopping: job handed back to the queue');
      } else if (err instanceof Cancelled) {
        await this.finish(job.id, 'cancelled', 'cancelled');
        log.write('runner', 'cancelled: trainer stopped');
      } else {
        const message = err instanceof ServiceError || err instanceof Error ? err.message : String(err);
        await this.finish(job.id, 'failed', message);
        log.write('runner', `failed: ${message}`);
      }
    } finally {
      clearInterval(heartbeat);
      await log.flush();
      await rm(workDir, { recursive: true, force: true });
    }
  }

  private train(trainer: Trainer, ctx: TrainerContext): Promise<TrainerResult> {
    if (trainer.kind === 'builtin') return runBuiltinTrainer(trainer, ctx);
    if (trainer.kind === 'command') return runCommandTrainer(trainer, ctx);
    return runWebhookTrainer(trainer, ctx, this.opts.serverUrl());
  }

  /** Heartbeat; also where a cancel request or a takeover reaches a running job. */
  private async heartbeat(jobId: string, controller: AbortController): Promise<void> {
    try {
      const [row] = await this.opts.db
        .update(jobs)
        .set({ heartbeatAt: new Date().toISOString() })
        .where(and(eq(jobs.id, jobId), eq(jobs.runner, this.opts.holder), eq(jobs.status, 'running')))
        .returning({ cancel: jobs.cancelRequested });
      if (controller.signal.aborted) return;
      if (!row) controller.abort(new Lost('job taken over'));
      else if (row.cancel) controller.abort(new Cancelled('cancel requested'));
    } catch (err) {
      this.opts.logger.warn({ err, job: jobId }, 'job heartbeat failed');
    }
  }

  private async finish(jobId: string, status: 'succeeded' | 'failed' | 'cancelled', error: string | null, details?: Record<string, unknown>): Promise<void> {
    await this.opts.db.transaction(async (tx) => {
      const done = await tx
        .update(jobs)
        .set({ status, error, finishedAt: new Date().toISOString(), uploadTokenHash: null })
        .where(and(eq(jobs.id, jobId), eq(jobs.runner, this.opts.holder), inArray(jobs.status, ['running'])))
        .returning({ id: jobs.id });
      if (done.length) {
        await recordAudit(tx, JOB_ACTOR, `job.${status}`, jobId, error ? { error, ...details } : details);
        await recordJobEvent(tx, jobId, status, error ? { error, ...details } : details);
      }
    });
  }

  private async modelName(modelId: number): Promise<string> {
    const m = await this.opts.db.query.models.findFirst({ where: eq(models.id, modelId) });
    if (!m) throw new Error(`model ${modelId} is gone`);
    return m.name;
  }

  /** The job's snapshot: taken once (a requeued job keeps the version it already recorded). */
  private async datasetOf(job: JobRow, modelName: string, trigger: JobTrigger, log: JobLog): Promise<DatasetVersionView & { id: number }> {
    const { db, store } = this.opts;
    if (job.datasetVersionId) return this.datasetById(job.datasetVersionId);
    const params = job.params as unknown as JobParams;
    const snap = await snapshotData(db, store, { data: params.data, modelName, cohort: trigger.cohort, jobId: job.id, actor: JOB_ACTOR, log: (l) => log.write('runner', l) });
    await db.update(jobs).set({ datasetVersionId: snap.version.id }).where(eq(jobs.id, job.id));
    log.write('runner', `training data: ${snap.version.ref} (${snap.version.rows} rows${snap.samples ? `, ${snap.samples} captured samples` : ''})`);
    return snap.version;
  }

  private async datasetById(id: number): Promise<DatasetVersionView & { id: number }> {
    const [r] = await this.opts.db
      .select({ name: datasets.name, version: datasetVersions.version })
      .from(datasetVersions)
      .innerJoin(datasets, eq(datasets.id, datasetVersions.datasetId))
      .where(eq(datasetVersions.id, id));
    if (!r) throw new Error(`dataset version ${id} is gone`);
    return getDatasetVersion(this.opts.db, `${r.name}@${r.version}`);
  }

  /** A private copy of the parent's ONNX (a trainer must not be able to touch the artifact store). */
  private async parentModel(job: JobRow, workDir: string): Promise<string | null> {
    if (!job.parentVersionId) return null;
    const v = await this.opts.db.query.modelVersions.findFirst({ where: eq(modelVersions.id, job.parentVersionId) });
    if (!v) return null;
    const file = path.join(workDir, 'parent.onnx');
    await copyFile(this.opts.store.pathOf(v.artifactSha256), file);
    return file;
  }

  /** The job a pipeline token belongs to, if the token is right and the job waits for it. */
  async jobForToken(jobId: string, token: string): Promise<JobRow> {
    const job = await this.opts.db.query.jobs.findFirst({ where: eq(jobs.id, jobId) });
    const given = Buffer.from(sha256Hex(token), 'hex');
    const expected = job?.uploadTokenHash ? Buffer.from(job.uploadTokenHash, 'hex') : null;
    if (!job || !expected || !timingSafeEqual(given, expected)) throw Unauthorized('job token not recognised (it is valid only while the job waits for its upload)');
    if (job.status !== 'waiting') throw Conflict(`job ${jobId} is ${job.status}, not waiting for an upload`);
    return job;
  }

  /**
   * The pipeline's upload: checked as ONNX first (a bad file leaves the job waiting, so the pipeline
   * may upload again), then the job continues like any finished attempt.
   */
  async acceptUpload(jobId: string, token: string, staged: StagedUpload, metrics: Record<string, number>): Promise<JobView> {
    const { db, holder } = this.opts;
    try {
      await this.jobForToken(jobId, token);
      checkOnnx(await readFile(staged.tempPath));
    } catch (err) {
      await this.opts.store.discard(staged);
      throw err;
    }
    const now = new Date().toISOString();
    const job = await db.transaction(async (tx) => {
      const [row] = await tx
        .update(jobs)
        .set({ status: 'running', runner: holder, heartbeatAt: now, uploadTokenHash: null })
        .where(and(eq(jobs.id, jobId), eq(jobs.status, 'waiting')))
        .returning();
      if (row) await recordJobEvent(tx, row.id, 'running', { upload: true });
      return row;
    });
    if (!job) {
      await this.opts.store.discard(staged);
      throw Conflict(`job ${jobId} stopped waiting meanwhile`);
    }
    const controller = new AbortController();
    const heartbeat = setInterval(() => void this.heartbeat(job.id, controller), this.opts.heartbeatMs);
    const log = new JobLog(db, job.id, this.opts.logger);
    try {
      log.write('runner', `model uploaded by the pipeline (${staged.size} bytes)`);
      const dataset = job.datasetVersionId ? await this.datasetById(job.datasetVersionId) : null;
      const published = await publishResult(this.opts, { job, modelName: await this.modelName(job.modelId), staged, dataset, metrics, params: { attempt: job.attempt, uploaded: true }, log: (l) => log.write('runner', l) });
      await this.finish(job.id, 'succeeded', null, { version: published.version, rollout: published.rolloutId });
      log.write('runner', `succeeded: ${published.version}`);
    } catch (err) {
      await this.finish(job.id, 'failed', (err as Error).message);
      log.write('runner', `failed: ${(err as Error).message}`);
    } finally {
      clearInterval(heartbeat);
      await log.flush();
    }
    return getJob(db, jobId);
  }
}

function checkOnnx(bytes: Uint8Array): void {
  try {
    inspectOnnx(bytes);
  } catch (err) {
    if (err instanceof InvalidOnnxError) throw new ServiceError('invalid_model', `the trained model is not a valid ONNX file: ${err.message}`);
    throw err;
  }
}
