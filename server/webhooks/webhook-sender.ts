// The webhook outbox's sender, for the alert webhook (FLOTILLA_ALERT_WEBHOOK_URL) and every webhook
// subscription alike: each delivery is POSTed as JSON with
// `x-flotilla-signature: sha256=<hex HMAC-SHA256 of the raw body>` (the GitHub convention) and
// `x-flotilla-delivery: <id>` (the same id on every attempt, so a receiver can drop repeats).
// Deliveries are durable: an alert's transaction inserts its `webhook_deliveries` row (alerts/deliveries.ts);
// subscriptions' rows come from the event log (webhook-fanout.ts, run at the start of every pass); this
// worker sends due rows in the background, so a restart or a crash while the receiver is down
// loses nothing, and callers never wait. A row without a subscription goes to the alert webhook's URL;
// a subscription's row to the subscription's URL, signed with its own secret. A row is claimed by a conditional update that sets a lease
// (`claimed_until`), so two replicas never send the same row at the same time; a replica that dies
// mid-send leaves a lease that expires. Network errors, 5xx, 408 and 429 are retried with exponential
// backoff and jitter up to maxAttempts, then the row is `failed` (listed by /alerts/deliveries).
import { createHmac } from 'node:crypto';
import { and, asc, eq, isNotNull, isNull, lte, or, sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import type { Db } from '../db/client.ts';
import { webhookDeliveries, webhookSubscriptions } from '../db/schema.ts';
import type { KeyCipher } from '../keys/key-cipher.ts';
import type { Metrics } from '../metrics.ts';
import { fanOutEvents } from './webhook-fanout.ts';

export interface WebhookSenderOptions {
  db: Db;
  /** The alert webhook (rows without a subscription); unset: only subscriptions are served. */
  url?: string;
  secret?: string;
  /** Decrypts subscriptions' secrets. */
  cipher: KeyCipher;
  logger: Logger;
  metrics: Metrics;
  /** Attempts per delivery, first included, before the row is failed (default 10). */
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  timeoutMs?: number;
  /** How often due rows are looked for when nothing wakes the worker (default 1000 ms). */
  pollMs?: number;
  /** Rows claimed per pass (default 20). */
  batch?: number;
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

type Row = typeof webhookDeliveries.$inferSelect;

export class WebhookSender {
  private loop?: Promise<void>;
  private stopping = false;
  private woken = false;
  private wakeSleep?: () => void;
  private pass?: Promise<void>;
  private readonly abort = new AbortController();
  private readonly deliveries: Counter<'result'>;

  constructor(private readonly opts: WebhookSenderOptions) {
    this.deliveries = new Counter({
      name: 'flotilla_alert_webhook_deliveries_total',
      help: 'Webhook delivery attempts (alert webhook and subscriptions) by result (delivered, retried later, failed for good)',
      labelNames: ['result'],
      registers: [opts.metrics.registry],
    });
  }

  start(): void {
    if (this.opts.url && !this.opts.secret) this.opts.logger.warn('FLOTILLA_ALERT_WEBHOOK_URL is set without FLOTILLA_ALERT_WEBHOOK_SECRET: webhook requests are not signed');
    this.loop ??= this.run();
  }

  /** Looks for due rows now (call after committing a transaction that enqueued one); returns at once. */
  wake(): void {
    this.woken = true;
    this.wakeSleep?.();
  }

  /** Resolves once no delivery is due or in flight on this replica (tests). */
  async idle(): Promise<void> {
    for (;;) {
      await this.pass;
      const now = new Date().toISOString();
      const [due] = await this.opts.db
        .select({ id: webhookDeliveries.id })
        .from(webhookDeliveries)
        .where(and(eq(webhookDeliveries.status, 'pending'), lte(webhookDeliveries.nextAttemptAt, now), this.servable()))
        .limit(1);
      if (!due || this.stopping) return;
      this.wake();
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Aborts requests in flight (their rows stay pending, unclaimed) and waits for the worker. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    this.wakeSleep?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    const pollMs = this.opts.pollMs ?? 1000;
    while (!this.stopping) {
      this.woken = false;
      this.pass = fanOutEvents(this.opts.db)
        .then(() => this.sendDue())
        .catch((err) => this.opts.logger.error({ err }, 'webhook pass failed'));
      await this.pass;
      if (this.stopping) break;
      if (this.woken) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, pollMs);
        function done() {
          clearTimeout(t);
          resolve();
        }
        this.wakeSleep = done;
      });
      this.wakeSleep = undefined;
    }
  }

  /** Claims due rows one by one and sends them, until none is due. */
  private async sendDue(): Promise<void> {
    const { db } = this.opts;
    while (!this.stopping) {
      const now = new Date();
      const at = now.toISOString();
      const due = and(eq(webhookDeliveries.status, 'pending'), lte(webhookDeliveries.nextAttemptAt, at), or(isNull(webhookDeliveries.claimedUntil), lte(webhookDeliveries.claimedUntil, at)), this.servable());
      const candidates = await db.select({ id: webhookDeliveries.id }).from(webhookDeliveries).where(due).orderBy(asc(webhookDeliveries.nextAttemptAt)).limit(this.opts.batch ?? 20);
      if (!candidates.length) return;
      for (const { id } of candidates) {
        if (this.stopping) return;
        // The lease: only one replica's conditional update matches; it outlives the request timeout.
        const lease = new Date(now.getTime() + (this.opts.timeoutMs ?? 5000) + 30_000).toISOString();
        const [row] = await db
          .update(webhookDeliveries)
          .set({ claimedUntil: lease })
          .where(and(eq(webhookDeliveries.id, id), due))
          .returning();
        if (row) await this.deliver(row, lease);
      }
    }
  }

  /** Rows this replica can send: every subscription's, and the alert webhook's when it has a URL. */
  private servable() {
    return this.opts.url ? undefined : isNotNull(webhookDeliveries.subscriptionId);
  }

  /** Where a row goes and what signs it; null when its subscription was removed meanwhile. */
  private async target(row: Row): Promise<{ url: string; secret?: string } | null> {
    if (!row.subscriptionId) return { url: this.opts.url!, secret: this.opts.secret };
    const sub = await this.opts.db.query.webhookSubscriptions.findFirst({ where: eq(webhookSubscriptions.id, row.subscriptionId) });
    return sub ? { url: sub.url, secret: this.opts.cipher.decrypt(sub.id, sub.secretCipher) } : null;
  }

  private async deliver(row: Row, lease: string): Promise<void> {
    const { db, logger } = this.opts;
    const max = this.opts.maxAttempts ?? 10;
    const target = await this.target(row);
    if (!target) {
      await db.update(webhookDeliveries).set({ status: 'failed', lastError: 'subscription removed', claimedUntil: null }).where(and(eq(webhookDeliveries.id, row.id), eq(webhookDeliveries.claimedUntil, lease)));
      return;
    }
    const { url, secret } = target;
    const headers: Record<string, string> = { 'content-type': 'application/json', 'x-flotilla-event': row.event, 'x-flotilla-delivery': row.id, 'user-agent': row.subscriptionId ? 'flotilla-webhooks' : 'flotilla-alerts' };
    if (secret) headers['x-flotilla-signature'] = signBody(secret, row.payload);
    let retry = true;
    let why: string;
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers,
        body: row.payload,
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.opts.timeoutMs ?? 5000)]),
      });
      await res.body?.cancel();
      if (res.ok) {
        await db
          .update(webhookDeliveries)
          .set({ status: 'delivered', attempts: sql`${webhookDeliveries.attempts} + 1`, deliveredAt: new Date().toISOString(), claimedUntil: null, lastError: null })
          .where(and(eq(webhookDeliveries.id, row.id), eq(webhookDeliveries.claimedUntil, lease)));
        this.deliveries.inc({ result: 'delivered' });
        return;
      }
      why = `HTTP ${res.status}`;
      retry = res.status >= 500 || res.status === 429 || res.status === 408;
    } catch (err) {
      if (this.stopping) {
        // Interrupted by stop(): not an attempt; free the row for the next start (or another replica).
        await db.update(webhookDeliveries).set({ claimedUntil: null }).where(and(eq(webhookDeliveries.id, row.id), eq(webhookDeliveries.claimedUntil, lease)));
        return;
      }
      why = (err as Error).message;
    }
    const attempts = row.attempts + 1;
    if (!retry || attempts >= max) {
      logger.warn({ url, event: row.event, delivery: row.id, attempts, why }, 'webhook delivery failed; giving up');
      await db
        .update(webhookDeliveries)
        .set({ status: 'failed', attempts, lastError: why, claimedUntil: null })
        .where(and(eq(webhookDeliveries.id, row.id), eq(webhookDeliveries.claimedUntil, lease)));
      this.deliveries.inc({ result: 'failed' });
      return;
    }
    const base = Math.min((this.opts.baseDelayMs ?? 500) * 2 ** (attempts - 1), this.opts.maxDelayMs ?? 300_000);
    const delay = base / 2 + Math.random() * (base / 2);
    logger.debug({ event: row.event, delivery: row.id, attempts, why, delay }, 'webhook delivery failed; retrying later');
    await db
      .update(webhookDeliveries)
      .set({ attempts, lastError: why, claimedUntil: null, nextAttemptAt: new Date(Date.now() + delay).toISOString() })
      .where(and(eq(webhookDeliveries.id, row.id), eq(webhookDeliveries.claimedUntil, lease)));
    this.deliveries.inc({ result: 'retried' });
  }
}
