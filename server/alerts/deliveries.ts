// The alert webhook's outbox (`webhook_deliveries`): a row per alert transition, inserted in the same
// transaction that opens, updates or closes the alert, so an alert never exists without its
// notification and a rolled-back alert sends nothing. `WebhookSender` (webhooks/webhook-sender.ts) sends the rows.
import { and, desc, eq, isNull, lt, sql } from 'drizzle-orm';
import { Gauge } from 'prom-client';
import { randomId } from '../auth/secrets.ts';
import type { Db, Tx } from '../db/client.ts';
import { webhookDeliveries } from '../db/schema.ts';
import type { Metrics } from '../metrics.ts';
import type { AlertTransition, AlertView } from './alert-service.ts';

export interface AlertEvent {
  event: `alert.${AlertTransition}`;
  at: string;
  alert: AlertView;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface DeliveryView {
  id: string;
  event: string;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptAt: string;
  lastError: string | null;
  createdAt: string;
  deliveredAt: string | null;
  alertId: string | null;
}

/** Inserts the delivery of an event; call inside the transaction that changed the alert. */
export async function enqueueDelivery(tx: Tx | Db, event: AlertEvent): Promise<string> {
  const id = randomId('dlv', 10);
  await tx.insert(webhookDeliveries).values({ id, event: event.event, payload: JSON.stringify(event), status: 'pending', nextAttemptAt: event.at });
  return id;
}

export async function listDeliveries(db: Db, filter: { status?: DeliveryStatus; limit: number; offset?: number }): Promise<DeliveryView[]> {
  const rows = await db
    .select()
    .from(webhookDeliveries)
    .where(and(isNull(webhookDeliveries.subscriptionId), filter.status ? eq(webhookDeliveries.status, filter.status) : undefined))
    .orderBy(desc(webhookDeliveries.createdAt))
    .limit(filter.limit)
    .offset(filter.offset ?? 0);
  return rows.map((r) => {
    let alertId: string | null = null;
    try {
      alertId = (JSON.parse(r.payload) as AlertEvent).alert?.id ?? null;
    } catch {
      /* not ours to fix here */
    }
    return {
      id: r.id,
      event: r.event,
      status: r.status,
      attempts: r.attempts,
      nextAttemptAt: r.nextAttemptAt,
      lastError: r.lastError,
      createdAt: r.createdAt,
      deliveredAt: r.deliveredAt,
      alertId,
    };
  });
}

/** Deletes delivered rows older than `days` (failed ones stay for the operator). */
export async function deleteOldDeliveries(db: Db, days: number, now = new Date()): Promise<number> {
  const cutoff = new Date(now.getTime() - days * 86_400_000).toISOString();
  const gone = await db
    .delete(webhookDeliveries)
    .where(and(eq(webhookDeliveries.status, 'delivered'), lt(webhookDeliveries.createdAt, cutoff)))
    .returning({ id: webhookDeliveries.id });
  return gone.length;
}

/** `flotilla_alert_webhook_deliveries{status="pending"|"failed"}`, counted at scrape time. */
export function registerDeliveryGauge(db: Db, metrics: Metrics): void {
  new Gauge({
    name: 'flotilla_alert_webhook_deliveries',
    help: 'Alert webhook deliveries waiting to be sent (pending) or given up on (failed)',
    labelNames: ['status'],
    registers: [metrics.registry],
    async collect() {
      const rows = await db
        .select({ status: webhookDeliveries.status, n: sql<number>`count(*)` })
        .from(webhookDeliveries)
        .where(sql`${webhookDeliveries.status} in ('pending', 'failed')`)
        .groupBy(webhookDeliveries.status);
      for (const status of ['pending', 'failed'] as const) this.set({ status }, rows.find((r) => r.status === status)?.n ?? 0);
    },
  });
}
