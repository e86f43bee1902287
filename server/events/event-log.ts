// The event log: writers append inside the transaction that made the change (so an event exists
// exactly when its change committed); readers page through by id.
import { and, asc, desc, gt, inArray, lt, sql, type SQL } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.ts';
import { events } from '../db/schema.ts';
import { EVENT_KINDS, kindOf, type EventData, type EventKind, type EventType, type EventView } from './event-types.ts';

export async function recordEvent<T extends EventType>(tx: Tx, type: T, subject: string, data: EventData[T]): Promise<void> {
  await tx.insert(events).values({ kind: kindOf(type), type, subject, data: data as Record<string, unknown> });
}

/**
 * `INSERT INTO events (kind, type, subject, data) <select>`: events whose subject and data come from
 * other rows, or that exist only when a condition holds, in one statement. Runs alone or in db.batch().
 */
export function insertEventsFrom(db: Tx, select: SQL) {
  return db.run(sql`INSERT INTO ${events} (${sql.identifier(events.kind.name)}, ${sql.identifier(events.type.name)}, ${sql.identifier(events.subject.name)}, ${sql.identifier(events.data.name)}) ${select}`);
}

/** Several events in one statement (e.g. one per device of a batch). */
export async function recordEvents(tx: Tx, rows: Array<{ type: EventType; subject: string; data: Record<string, unknown> }>): Promise<void> {
  if (!rows.length) return;
  await tx.insert(events).values(rows.map((r) => ({ kind: kindOf(r.type), type: r.type, subject: r.subject, data: r.data })));
}

function toView(row: typeof events.$inferSelect): EventView {
  return { id: row.id, kind: row.kind, type: row.type, at: row.at, subject: row.subject, data: row.data };
}

function kindFilter(kinds: readonly EventKind[]): SQL | undefined {
  return kinds.length < EVENT_KINDS.length ? inArray(events.kind, [...kinds]) : undefined;
}

/** Events after `afterId`, oldest first. */
export async function readEventsAfter(db: Tx, afterId: number, kinds: readonly EventKind[], limit: number): Promise<EventView[]> {
  const rows = await db.select().from(events).where(and(gt(events.id, afterId), kindFilter(kinds))).orderBy(asc(events.id)).limit(limit);
  return rows.map(toView);
}

/** The newest `limit` events (after `afterId` when given), returned oldest first. */
export async function recentEvents(db: Tx, filter: { kinds: readonly EventKind[]; afterId?: number; limit: number }): Promise<EventView[]> {
  const rows = await db
    .select()
    .from(events)
    .where(and(filter.afterId !== undefined ? gt(events.id, filter.afterId) : undefined, kindFilter(filter.kinds)))
    .orderBy(desc(events.id))
    .limit(filter.limit);
  return rows.reverse().map(toView);
}

/** The id of the newest event (0 when there is none): where a stream without `since` starts. */
export async function lastEventId(db: Tx): Promise<number> {
  const [row] = await db.select({ id: events.id }).from(events).orderBy(desc(events.id)).limit(1);
  return row?.id ?? 0;
}

/** Deletes events older than `days`; returns how many. */
export async function deleteOldEvents(db: Db, days: number, now = new Date()): Promise<number> {
  const before = new Date(now.getTime() - days * 86_400_000).toISOString();
  return (await db.delete(events).where(lt(events.at, before))).rowsAffected;
}
