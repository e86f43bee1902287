// The audit log: every mutating call records who did what to which target, in the same transaction.
import { desc, eq, and, gte, type SQL } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.ts';
import { auditLog } from '../db/schema.ts';

export async function recordAudit(tx: Tx, actor: string, action: string, target: string, details?: unknown): Promise<void> {
  await tx.insert(auditLog).values({ actor, action, target, details: details ?? null });
}

export async function listAudit(db: Db, filter: { limit: number; offset?: number; actor?: string; action?: string; since?: string }) {
  const where: SQL[] = [];
  if (filter.actor) where.push(eq(auditLog.actor, filter.actor));
  if (filter.action) where.push(eq(auditLog.action, filter.action));
  if (filter.since) where.push(gte(auditLog.at, filter.since));
  return db
    .select()
    .from(auditLog)
    .where(where.length ? and(...where) : undefined)
    .orderBy(desc(auditLog.id))
    .limit(filter.limit)
    .offset(filter.offset ?? 0);
}
