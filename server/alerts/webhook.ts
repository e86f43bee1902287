// Optional alert webhook: each alert event is POSTed as JSON with
// `x-flotilla-signature: sha256=<hex HMAC-SHA256 of the raw body>` (the GitHub convention), retried
// with exponential backoff and jitter on network errors, 5xx and 429, a bounded number of times.
// Deliveries run in the background from an in-memory queue: notify() never waits, so neither
// ingest nor the drift monitor is slowed by a slow receiver. The same `x-flotilla-delivery` id is
// sent on every attempt, so a receiver can drop repeats.
import { createHmac, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import type { Metrics } from '../metrics.ts';
import type { AlertTransition, AlertView } from './alert-service.ts';

export interface AlertEvent {
  event: `alert.${AlertTransition}`;
  at: string;
  alert: AlertView;
}

export interface AlertWebhookOptions {
  url: string;
  secret?: string;
  logger: Logger;
  metrics: Metrics;
  /** Attempts per event, first included (default 6: about 0.5 + 1 + 2 + 4 + 8 s of waiting). */
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  timeoutMs?: number;
  /** Events waiting beyond this are dropped (oldest first) and counted. */
  maxQueue?: number;
}

/**
 * `sha256=<hex>` for a body; receivers recompute it with their copy of the secret.
 *
 * @example
 * signBody('s3cret', '{"event":"alert.opened"}') // 'sha256=…'
 */
export function signBody(secret: string, body: string): string {
  return 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
}

export class AlertWebhook {
  private readonly queue: Array<{ id: string; body: string; event: string }> = [];
  private worker?: Promise<void>;
  private stopping = false;
  private readonly abort = new AbortController();
  private readonly deliveries: Counter<'result'>;

  constructor(private readonly opts: AlertWebhookOptions) {
    this.deliveries = new Counter({
      name: 'flotilla_alert_webhook_deliveries_total',
      help: 'Alert webhook deliveries by result (delivered, failed after retries, dropped from a full queue or at stop)',
      labelNames: ['result'],
      registers: [opts.metrics.registry],
    });
  }

  start(): void {
    if (!this.opts.secret) this.opts.logger.warn('FLOTILLA_ALERT_WEBHOOK_URL is set without FLOTILLA_ALERT_WEBHOOK_SECRET: webhook requests are not signed');
  }

  /** Queues an event; returns at once. */
  notify(event: AlertEvent): void {
    if (this.stopping) return;
    if (this.queue.length >= (this.opts.maxQueue ?? 1000)) {
      this.queue.shift();
      this.deliveries.inc({ result: 'dropped' });
    }
    this.queue.push({ id: randomUUID(), body: JSON.stringify(event), event: event.event });
    this.worker ??= this.drain().finally(() => {
      this.worker = undefined;
    });
  }

  /** Resolves when the queue is empty (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.worker) await this.worker;
  }

  /** Abandons pending retries (counted as dropped) and waits for the worker to finish. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    await this.worker;
    if (this.queue.length) this.deliveries.inc({ result: 'dropped' }, this.queue.length);
    this.queue.length = 0;
  }

  private async drain(): Promise<void> {
    while (this.queue.length && !this.stopping) {
      const item = this.queue[0];
      const ok = await this.deliver(item);
      this.queue.shift();
      if (ok !== null) this.deliveries.inc({ result: ok ? 'delivered' : 'failed' });
      else this.deliveries.inc({ result: 'dropped' });
    }
  }

  /** true delivered, false gave up, null interrupted by stop(). */
  private async deliver(item: { id: string; body: string; event: string }): Promise<boolean | null> {
    const { url, secret, logger } = this.opts;
    const max = this.opts.maxAttempts ?? 6;
    const headers: Record<string, string> = { 'content-type': 'application/json', 'x-flotilla-event': item.event, 'x-flotilla-delivery': item.id, 'user-agent': 'flotilla-alerts' };
    if (secret) headers['x-flotilla-signature'] = signBody(secret, item.body);
    for (let attempt = 1; attempt <= max; attempt++) {
      let retry = true;
      let why: string;
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers,
          body: item.body,
          signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.opts.timeoutMs ?? 5000)]),
        });
        await res.body?.cancel();
        if (res.ok) return true;
        why = `HTTP ${res.status}`;
        retry = res.status >= 500 || res.status === 429 || res.status === 408;
      } catch (err) {
        if (this.stopping) return null;
        why = (err as Error).message;
      }
      if (!retry || attempt === max) {
        logger.warn({ url, event: item.event, delivery: item.id, attempt, why }, 'alert webhook delivery failed; giving up');
        return false;
      }
      const base = Math.min((this.opts.baseDelayMs ?? 500) * 2 ** (attempt - 1), this.opts.maxDelayMs ?? 30_000);
      const delay = base / 2 + Math.random() * (base / 2);
      logger.debug({ event: item.event, attempt, why, delay }, 'alert webhook delivery failed; retrying');
      if (!(await this.sleep(delay))) return null;
    }
    return false;
  }

  private sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.abort.signal.aborted) return resolve(false);
      const t = setTimeout(() => {
        this.abort.signal.removeEventListener('abort', onAbort);
        resolve(true);
      }, ms);
      const onAbort = () => {
        clearTimeout(t);
        resolve(false);
      };
      this.abort.signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}
