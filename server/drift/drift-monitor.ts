// Scheduled (node-cron) and on-demand drift evaluation of every (cohort, model version) with windows
// in the evaluation window, plus every pair with an open alert (so a quiet cohort can still recover).
// Each evaluation is recorded, opens/updates/closes the pair's alert, and alert transitions go to the
// webhook outbox in the same transaction (the webhook is woken once it commits). Runs in one process
// are serialized; across replicas the alerts' unique index and conditional updates keep one open alert per pair and one notification per transition, and
// FLOTILLA_DRIFT_CRON=off leaves the schedule to one replica.
import { and, eq, gte, lt } from 'drizzle-orm';
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { applyDriftVerdict, driftedOf, openAlertPairs, type AlertTransition, type AlertView } from '../alerts/alert-service.ts';
import type { WebhookSender } from '../webhooks/webhook-sender.ts';
import type { Db } from '../db/client.ts';
import { driftEvaluations, referenceProfiles, statsRollups } from '../db/schema.ts';
import { ServiceError } from '../errors.ts';
import { queryWindow } from '../ingest/buckets.ts';
import { evaluatePair } from './drift-service.ts';

export interface DriftMonitorOptions {
  db: Db;
  logger: Logger;
  /** node-cron expression or 'off'. */
  cron: string;
  windowS: number;
  webhook?: WebhookSender;
}

export interface EvaluationSummary {
  cohort: string;
  model: string;
  rows: number;
  verdict: string;
  driftedFeatures: string[];
  transition: AlertTransition | null;
  alert: AlertView | null;
}

export interface RunOptions {
  end?: Date;
  windowS?: number;
  /** Only this model version / cohort. */
  modelVersionId?: number;
  cohort?: string;
}

export class DriftMonitor {
  private task?: ScheduledTask;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: DriftMonitorOptions) {}

  start(): void {
    if (this.opts.cron === 'off') return;
    this.task = cron.schedule(
      this.opts.cron,
      async () => {
        try {
          const out = await this.run();
          const changed = out.filter((e) => e.transition);
          if (changed.length) this.opts.logger.info({ evaluated: out.length, transitions: changed.map((e) => `${e.cohort}/${e.model}: ${e.transition}`) }, 'drift evaluation');
        } catch (err) {
          this.opts.logger.error({ err }, 'scheduled drift evaluation failed');
        }
      },
      { name: 'flotilla-drift-monitor', noOverlap: true },
    );
  }

  async stop(): Promise<void> {
    await this.task?.destroy();
    this.task = undefined;
    await this.chain.catch(() => undefined);
  }

  /** Evaluates now (or as of `end`); runs in this process never overlap. */
  run(opts: RunOptions = {}): Promise<EvaluationSummary[]> {
    const next = this.chain.catch(() => undefined).then(() => this.runOnce(opts));
    this.chain = next;
    return next;
  }

  private async runOnce(opts: RunOptions): Promise<EvaluationSummary[]> {
    const { db, logger } = this.opts;
    const window = queryWindow(opts.windowS ?? this.opts.windowS, opts.end ?? new Date());
    const t = statsRollups;
    const recent = await db
      .selectDistinct({ cohort: t.key, modelVersionId: t.modelVersionId })
      .from(t)
      .innerJoin(referenceProfiles, eq(referenceProfiles.modelVersionId, t.modelVersionId))
      .where(and(eq(t.scope, 'cohort'), eq(t.granularity, window.granularity), gte(t.bucketStart, window.fromBucket), lt(t.bucketStart, window.end)));
    const pairs = new Map<string, { cohort: string; modelVersionId: number }>();
    for (const p of [...recent, ...(await openAlertPairs(db))]) pairs.set(`${p.cohort}\u0000${p.modelVersionId}`, p);
    const out: EvaluationSummary[] = [];
    for (const p of pairs.values()) {
      if (opts.modelVersionId !== undefined && p.modelVersionId !== opts.modelVersionId) continue;
      if (opts.cohort !== undefined && p.cohort !== opts.cohort) continue;
      try {
        out.push(await this.evaluate(p.cohort, p.modelVersionId, window));
      } catch (err) {
        // One pair's problem (no reference any more, a config that no longer fits) must not stop the others.
        if (err instanceof ServiceError) logger.warn({ cohort: p.cohort, modelVersionId: p.modelVersionId, err: err.message }, 'drift evaluation skipped');
        else throw err;
      }
    }
    return out;
  }

  private async evaluate(cohort: string, modelVersionId: number, window: ReturnType<typeof queryWindow>): Promise<EvaluationSummary> {
    const { db, webhook } = this.opts;
    const now = new Date();
    const result = await db.transaction(async (tx) => {
      const { result: r } = await evaluatePair(tx, modelVersionId, cohort, window);
      const drifted = driftedOf(r.features, r.outputs);
      const evaluated = r.dataset.evaluated > 0 || r.outputs.some((o) => o.verdict !== 'insufficient_data');
      await tx.insert(driftEvaluations).values({
        at: now.toISOString(),
        cohort,
        modelVersionId,
        windowStart: window.start,
        windowEnd: window.end,
        rows: r.rows,
        verdict: r.dataset.verdict,
        driftedFeatures: drifted.map((f) => f.feature),
        report: { dataset: r.dataset, features: r.features, outputs: r.outputs },
      });
      const applied = await applyDriftVerdict(tx, { cohort, modelVersionId, model: r.model, drifted, evaluated, window: { start: window.start, end: window.end }, notify: !!webhook }, now);
      return { r, drifted, ...applied };
    });
    if (result.transition && webhook) webhook.wake();
    return {
      cohort,
      model: result.r.model,
      rows: result.r.rows,
      verdict: result.r.dataset.verdict,
      driftedFeatures: result.drifted.map((f) => f.feature),
      transition: result.transition,
      alert: result.alert,
    };
  }
}
