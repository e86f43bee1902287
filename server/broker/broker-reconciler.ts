// Keeps an external Mosquitto's device clients in line with the database while the server runs, not
// only at start: every FLOTILLA_BROKER_RECONCILE_S and on demand (POST /api/v1/broker/reconcile,
// `flotilla broker reconcile`). One run at a time: a request during a run gets that run's result.
// Every replica may run it (idempotent), so no lease is needed.
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.ts';
import type { MosquittoAccess, ReconcileResult } from './mosquitto-access.ts';

/** Refusals of the server's own login trigger at most one reconcile per this long. */
const SOON_PAUSE_MS = 10_000;

export class BrokerReconciler {
  private running?: Promise<ReconcileResult>;
  private timer?: NodeJS.Timeout;
  private lastAt = 0;

  constructor(private readonly opts: { access: MosquittoAccess; metrics: Metrics; logger: Logger; everyS: number }) {}

  start(): void {
    if (this.opts.everyS <= 0) return;
    this.timer = setInterval(() => void this.run().catch((err) => this.opts.logger.warn({ err: (err as Error).message }, 'broker reconcile failed')), this.opts.everyS * 1000);
    this.timer.unref();
  }

  /**
   * A reconcile now unless one ran in the last SOON_PAUSE_MS: the server's own login refused means
   * the broker lost its client (e.g. its dynamic-security file was reset), and the reconcile puts it back.
   */
  runSoon(): void {
    if (Date.now() - this.lastAt < SOON_PAUSE_MS) return;
    this.lastAt = Date.now();
    this.opts.logger.warn('the broker refused the server\'s login: reconciling its clients');
    void this.run().catch((err) => this.opts.logger.warn({ err: (err as Error).message }, 'broker reconcile failed'));
  }

  run(): Promise<ReconcileResult> {
    this.running ??= this.once().finally(() => (this.running = undefined));
    return this.running;
  }

  private async once(): Promise<ReconcileResult> {
    const { metrics } = this.opts;
    try {
      const r = await this.opts.access.reconcile();
      metrics.brokerReconciles.inc({ result: 'ok' });
      for (const [action, n] of [['enabled', r.enabled], ['disabled', r.disabled], ['deleted', r.deleted], ['role_recreated', r.rolesRecreated]] as const) if (n) metrics.brokerReconcileActions.inc({ action }, n);
      metrics.brokerClientsMissing.set(r.missing.length);
      return r;
    } catch (err) {
      metrics.brokerReconciles.inc({ result: 'error' });
      throw err;
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
