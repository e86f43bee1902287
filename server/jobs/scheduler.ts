// The retraining scheduler. Only the replica holding the `scheduler` lease runs it (FLOTILLA_SCHEDULER=off
// keeps a replica out of the race altogether). While leading, it keeps one node-cron task per enabled
// policy with a schedule (reloaded when a policy changes, whichever replica changed it), and on every
// tick: recovers jobs whose runner died, starts drift-triggered jobs, claims queued jobs, advances
// staged rollouts and closes drift alerts that a clean newer version superseded. Losing
// the lease stops the schedules and the ticks at once.
import cron, { type ScheduledTask } from 'node-cron';
import { and, eq, inArray, isNotNull } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Db } from '../db/client.ts';
import { jobs, retrainPolicies } from '../db/schema.ts';
import type { DesiredState } from '../deployments/desired-state.ts';
import type { WebhookSender } from '../webhooks/webhook-sender.ts';
import { tickRollouts } from '../rollouts/rollout-ticker.ts';
import { resolveSupersededAlerts } from '../rollouts/superseded-alerts.ts';
import { triggerDriftJobs } from './drift-trigger.ts';
import { enqueueJob } from './job-service.ts';
import { JOB_ACTOR } from './job-result.ts';
import type { JobRunner } from './job-runner.ts';
import { Leader } from './leader.ts';
import { Lease } from './lease.ts';
import { policyOf } from './retrain-policy.ts';

export const SCHEDULER_LEASE = 'scheduler';

export interface SchedulerOptions {
  db: Db;
  logger: Logger;
  desired: DesiredState;
  runner: JobRunner;
  holder: string;
  enabled: boolean;
  tickMs: number;
  leaseTtlMs: number;
  /** Alert transitions made here (a superseded alert resolved) are sent like the drift monitor's. */
  webhook?: WebhookSender;
}

export class Scheduler {
  private leader?: Leader;
  private ticker?: NodeJS.Timeout;
  private ticking?: Promise<void>;
  private leading = false;
  private readonly tasks = new Map<number, { cron: string; task: ScheduledTask }>();

  constructor(private readonly opts: SchedulerOptions) {}

  get isLeader(): boolean {
    return this.leader?.isLeader ?? false;
  }

  start(): void {
    if (!this.opts.enabled) return;
    this.leader = new Leader({
      lease: new Lease(this.opts.db),
      name: SCHEDULER_LEASE,
      holder: this.opts.holder,
      ttlMs: this.opts.leaseTtlMs,
      logger: this.opts.logger,
      onGained: () => this.lead(),
      onLost: () => this.follow(),
    });
    this.leader.start();
  }

  async stop(): Promise<void> {
    await this.leader?.stop();
    await this.follow();
  }

  private lead(): void {
    this.leading = true;
    const loop = () => {
      this.ticking = this.tick().finally(() => {
        if (this.leading) this.ticker = setTimeout(loop, this.opts.tickMs);
      });
    };
    loop();
  }

  private async follow(): Promise<void> {
    this.leading = false;
    clearTimeout(this.ticker);
    await this.ticking;
    clearTimeout(this.ticker);
    for (const { task } of this.tasks.values()) await task.destroy();
    this.tasks.clear();
  }

  /** One pass of the leader's duties; each part's failure is logged and does not stop the others. */
  async tick(): Promise<void> {
    const { db, logger, runner, desired } = this.opts;
    const step = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        logger.error({ err }, `scheduler: ${what} failed`);
      }
    };
    await step('reloading schedules', () => this.syncSchedules());
    await step('recovering jobs', () => runner.recover());
    await step('drift trigger', async () => {
      const started = await triggerDriftJobs(db);
      if (started.length) logger.info({ jobs: started }, 'drift-triggered retraining');
    });
    await step('starting jobs', () => runner.pump());
    await step('advancing rollouts', () => tickRollouts(db, desired, logger));
    await step('resolving superseded alerts', async () => {
      const resolved = await resolveSupersededAlerts(db, new Date(), !!this.opts.webhook);
      if (resolved.length) this.opts.webhook?.wake();
      for (const alert of resolved) {
        logger.info({ alert: alert.id, cohort: alert.cohort, model: alert.model }, 'drift alert resolved: the cohort runs a newer version without drift');
      }
    });
  }

  /** One cron task per enabled policy with a schedule; changed schedules are replaced, removed ones stopped. */
  private async syncSchedules(): Promise<void> {
    const rows = await this.opts.db
      .select({ modelId: retrainPolicies.modelId, cron: retrainPolicies.cron })
      .from(retrainPolicies)
      .where(and(eq(retrainPolicies.enabled, true), isNotNull(retrainPolicies.cron)));
    const wanted = new Map(rows.map((r) => [r.modelId, r.cron!]));
    for (const [modelId, t] of this.tasks) {
      if (wanted.get(modelId) === t.cron) continue;
      await t.task.destroy();
      this.tasks.delete(modelId);
    }
    for (const [modelId, expr] of wanted) {
      if (this.tasks.has(modelId) || !this.leading) continue;
      const task = cron.schedule(expr, () => this.fire(modelId, expr), { name: `flotilla-retrain-${modelId}`, noOverlap: true });
      this.tasks.set(modelId, { cron: expr, task });
    }
  }

  /** A schedule fired: queue a job unless the model still has one queued, running or waiting. */
  private async fire(modelId: number, expr: string): Promise<void> {
    const { db, logger } = this.opts;
    try {
      const id = await db.transaction(async (tx) => {
        const p = await tx.query.retrainPolicies.findFirst({ where: eq(retrainPolicies.modelId, modelId) });
        if (!p || !p.enabled || p.cron !== expr) return null;
        const busy = await tx.query.jobs.findFirst({ where: and(eq(jobs.modelId, modelId), inArray(jobs.status, ['queued', 'running', 'waiting'])) });
        if (busy) return null;
        return enqueueJob(tx, { modelId, policy: policyOf(p), trigger: { kind: 'cron' }, actor: JOB_ACTOR });
      });
      if (id) {
        logger.info({ job: id, cron: expr }, 'scheduled retraining queued');
        await this.opts.runner.pump();
      }
    } catch (err) {
      logger.error({ err, modelId }, 'scheduled retraining failed to start');
    }
  }
}
