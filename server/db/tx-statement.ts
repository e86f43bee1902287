// A statement run straight on the libsql object a drizzle transaction holds, its text prepared once per
// connection (reused-statements.ts): for fixed-shape statements run per message on hot paths, where
// drizzle's `sql` builder (a walk of the template's chunks through type checks) and a fresh prepare cost
// more than SQLite's own work. Used by multi-row.ts (ingest) and the device-state writer's `reported` path.
import type { InValue, Row } from '@libsql/client';
import type { Tx } from './client.ts';
import { reused } from './reused-statements.ts';

type Executor = { execute(stmt: { sql: string; args: InValue[] }): Promise<{ rows: Row[] }> };

/**
 * The libsql object a drizzle transaction (or database) runs its statements on: `session.tx` inside a
 * transaction, `session.client` outside (drizzle-orm/libsql 0.45). Checked, so an upgrade that moves
 * them fails loudly in the tests rather than writing elsewhere.
 */
export function executorOf(tx: Tx): Executor {
  const session = (tx as unknown as { session?: { tx?: Executor; client?: Executor } }).session;
  const target = session?.tx ?? session?.client;
  if (typeof target?.execute !== 'function') throw new Error('drizzle-orm without session.tx/session.client: server/db/tx-statement.ts needs updating');
  return target;
}

/**
 * A fixed SQL text (with `?` parameters), marked for reuse: run it with `runStatement`.
 *
 * @example
 * const SET_STATE = statement('UPDATE devices SET update_state = ? WHERE id = ?');
 * await runStatement(tx, SET_STATE, ['active', id]);
 */
export function statement(text: string): string {
  return reused(text.replace(/\s+/g, ' ').trim());
}

/** Runs a `statement()` text in `tx` with its arguments; returns its rows. */
export async function runStatement(tx: Tx, text: string, args: InValue[]): Promise<Row[]> {
  return (await executorOf(tx).execute({ sql: text, args })).rows;
}
