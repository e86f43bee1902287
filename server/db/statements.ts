// Which statements only read: they need neither this process's writer slot (write-queue.ts) nor a
// connection set for durable commits (synchronous.ts). PRAGMAs count as reads here: the ones the server
// issues outside a transaction (journal mode, checkpoints) must not wait behind a writer.
import type { InStatement } from '@libsql/client';

const READ = /^\s*(select|pragma|explain)\b/i;

export const sqlOf = (stmt: InStatement): string => (typeof stmt === 'string' ? stmt : stmt.sql);

export function isRead(stmt: InStatement): boolean {
  return READ.test(sqlOf(stmt));
}
