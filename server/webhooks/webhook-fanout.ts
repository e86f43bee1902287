// Event log → webhook outbox. Every change a team automates on already appends an `events` row in the
// transaction that made it; this turns each new event into one `webhook_deliveries` row per matching
// subscription, and moves a cursor past it, in one transaction. The cursor moves by conditional update,
// so two replicas fanning out at once cannot both insert: the loser's transaction rolls back. Events are
// never delivered twice nor skipped: ids become visible in id order (one writer at a time), and the
// upper bound is read before the events.
import { and, asc, eq, gt, inArray, lte } from 'drizzle-orm';
import { randomId } from '../auth/secrets.ts';
import type { Db } from '../db/client.ts';
import { eventCursors, events, webhookDeliveries, webhookSubscriptions } from '../db/schema.ts';
import { lastEventId } from '../events/event-log.ts';
import { filterMatches, WEBHOOK_KINDS } from './webhook-events.ts';

const CURSOR = 'webhooks';
const BATCH = 500;

class CursorMoved extends Error {}

/** Fans out the events since the cursor; returns how many deliveries were queued. */
export async function fanOutEvents(db: Db): Promise<number> {
  const upTo = await lastEventId(db);
  const cursor = await db.query.eventCursors.findFirst({ where: eq(eventCursors.name, CURSOR) });
  if (!cursor) {
    // First start: begin at the present (subscriptions receive only events after their creation anyway).
    await db.insert(eventCursors).values({ name: CURSOR, position: upTo, updatedAt: new Date().toISOString() }).onConflictDoNothing();
    return 0;
  }
  if (upTo <= cursor.position) return 0;
  let queued = 0;
  try {
    // Subscriptions are read in the transaction, so one removed meanwhile gets no rows.
    await db.transaction(async (tx) => {
      const subs = await tx.select({ id: webhookSubscriptions.id, events: webhookSubscriptions.events, fromEventId: webhookSubscriptions.fromEventId }).from(webhookSubscriptions);
      const rows = subs.length
        ? await tx
            .select()
            .from(events)
            .where(and(gt(events.id, cursor.position), lte(events.id, upTo), inArray(events.kind, [...WEBHOOK_KINDS])))
            .orderBy(asc(events.id))
            .limit(BATCH)
        : [];
      const next = rows.length === BATCH ? rows[rows.length - 1].id : upTo;
      const deliveries = rows.flatMap((e) =>
        subs
          .filter((s) => e.id > s.fromEventId && filterMatches(s.events, e.type))
          .map((s) => {
            const id = randomId('dlv', 10);
            const payload = JSON.stringify({ id, event: e.type, eventId: e.id, at: e.at, subject: e.subject, data: e.data });
            return { id, event: e.type, payload, status: 'pending' as const, nextAttemptAt: e.at, subscriptionId: s.id };
          }),
      );
      const moved = await tx
        .update(eventCursors)
        .set({ position: next, updatedAt: new Date().toISOString() })
        .where(and(eq(eventCursors.name, CURSOR), eq(eventCursors.position, cursor.position)));
      if (moved.rowsAffected !== 1) throw new CursorMoved();
      for (let i = 0; i < deliveries.length; i += 100) await tx.insert(webhookDeliveries).values(deliveries.slice(i, i + 100));
      queued = deliveries.length;
    });
  } catch (err) {
    if (err instanceof CursorMoved) return 0; // another replica fanned these out
    throw err;
  }
  return queued;
}
