// Webhook subscriptions: URL, secret (encrypted at rest: it has to be readable to sign), event filter.
// Creating, removing and pinging are audited; removing one deletes its delivery log in the same transaction.
import { and, desc, eq } from 'drizzle-orm';
import { recordAudit } from '../audit/audit-log.ts';
import { randomId, randomSecret } from '../auth/secrets.ts';
import type { Db } from '../db/client.ts';
import { webhookDeliveries, webhookSubscriptions } from '../db/schema.ts';
import { Invalid, NotFound } from '../errors.ts';
import { lastEventId } from '../events/event-log.ts';
import type { KeyCipher } from '../keys/key-cipher.ts';
import { normalizeFilter } from './webhook-events.ts';

export interface SubscriptionView {
  id: string;
  url: string;
  events: string[];
  description: string | null;
  createdAt: string;
  createdBy: string | null;
}

type Row = typeof webhookSubscriptions.$inferSelect;
const view = (r: Row): SubscriptionView => ({ id: r.id, url: r.url, events: r.events, description: r.description, createdAt: r.createdAt, createdBy: r.createdBy });

/** http(s) only, no credentials in the URL (they would be logged and shown). */
export function checkUrl(url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw Invalid(`invalid webhook URL "${url}": give an absolute http:// or https:// URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw Invalid(`invalid webhook URL "${url}": only http:// and https:// are delivered to`);
  if (u.username || u.password) throw Invalid('the webhook URL must not carry credentials: the receiver checks x-flotilla-signature instead');
}

export async function createSubscription(
  db: Db,
  cipher: KeyCipher,
  input: { url: string; events: string[]; secret?: string; description?: string; actor: string },
): Promise<SubscriptionView & { secret: string }> {
  checkUrl(input.url);
  const events = normalizeFilter(input.events);
  const id = randomId('whk', 8);
  const secret = input.secret ?? randomSecret('whsec');
  await db.transaction(async (tx) => {
    await tx.insert(webhookSubscriptions).values({
      id,
      url: input.url,
      secretCipher: cipher.encrypt(id, secret),
      events,
      description: input.description ?? null,
      // Only events after this one: a new subscription does not receive the past.
      fromEventId: await lastEventId(tx),
      createdBy: input.actor,
    });
    await recordAudit(tx, input.actor, 'webhook.create', id, { url: input.url, events });
  });
  return { ...(await getSubscription(db, id)), secret };
}

export async function getSubscription(db: Db, id: string): Promise<SubscriptionView> {
  const row = await db.query.webhookSubscriptions.findFirst({ where: eq(webhookSubscriptions.id, id) });
  if (!row) throw NotFound(`webhook "${id}"`, { hint: 'list webhooks with `flotilla webhooks ls`' });
  return view(row);
}

export async function listSubscriptions(db: Db, page: { limit: number; offset: number }): Promise<SubscriptionView[]> {
  return (await db.select().from(webhookSubscriptions).orderBy(desc(webhookSubscriptions.createdAt)).limit(page.limit).offset(page.offset)).map(view);
}

export async function removeSubscription(db: Db, id: string, actor: string): Promise<void> {
  await db.transaction(async (tx) => {
    const gone = await tx.delete(webhookSubscriptions).where(eq(webhookSubscriptions.id, id)).returning({ id: webhookSubscriptions.id });
    if (!gone.length) throw NotFound(`webhook "${id}"`, { hint: 'list webhooks with `flotilla webhooks ls`' });
    await tx.delete(webhookDeliveries).where(eq(webhookDeliveries.subscriptionId, id));
    await recordAudit(tx, actor, 'webhook.delete', id);
  });
}

/** Queues a `ping` to the subscription through the outbox (signed and retried like any event). */
export async function pingSubscription(db: Db, id: string, actor: string): Promise<{ deliveryId: string }> {
  await getSubscription(db, id);
  const deliveryId = randomId('dlv', 10);
  const at = new Date().toISOString();
  await db.transaction(async (tx) => {
    await tx.insert(webhookDeliveries).values({ id: deliveryId, event: 'ping', payload: JSON.stringify({ id: deliveryId, event: 'ping', at, subscriptionId: id, by: actor }), status: 'pending', nextAttemptAt: at, subscriptionId: id });
    await recordAudit(tx, actor, 'webhook.test', id, { delivery: deliveryId });
  });
  return { deliveryId };
}

export interface SubscriptionDelivery {
  id: string;
  event: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  nextAttemptAt: string;
  lastError: string | null;
  createdAt: string;
  deliveredAt: string | null;
}

/** One subscription's delivery log, newest first. */
export async function subscriptionDeliveries(db: Db, id: string, filter: { status?: SubscriptionDelivery['status']; limit: number; offset: number }): Promise<SubscriptionDelivery[]> {
  await getSubscription(db, id);
  const rows = await db
    .select()
    .from(webhookDeliveries)
    .where(and(eq(webhookDeliveries.subscriptionId, id), filter.status ? eq(webhookDeliveries.status, filter.status) : undefined))
    .orderBy(desc(webhookDeliveries.createdAt), desc(webhookDeliveries.id))
    .limit(filter.limit)
    .offset(filter.offset);
  return rows.map((r) => ({ id: r.id, event: r.event, status: r.status, attempts: r.attempts, nextAttemptAt: r.nextAttemptAt, lastError: r.lastError, createdAt: r.createdAt, deliveredAt: r.deliveredAt }));
}
