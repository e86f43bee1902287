// `PRAGMA synchronous` on every connection that writes. The setting belongs to a connection, not to the
// file, and libsql's file client keeps a pool that opens connections as they are needed (a read while a
// transaction holds one opens another, and a write may later run on it), so setting it once at open would
// reach only the first connection. Here every write — a transaction, or a write through `execute()` or
// `batch()`, which is run as one — first checks the setting on the connection it holds and, on a
// connection that does not have it yet, ends the just-begun (empty) transaction, sets it and begins again:
// SQLite refuses to change it inside a transaction. After that first time a write pays one PRAGMA read.
// The writers' other per-connection settings (WriterSettings: the WAL checkpoint threshold, the page cache)
// travel the same way.
//
// NORMAL in WAL mode: a commit appends to the WAL without an fsync (the WAL is synced at checkpoints), so a
// killed process loses nothing it committed; a power loss or OS crash may lose the last commits, never the
// file's consistency. FULL syncs the WAL at every commit.
import type { Client, InStatement, Transaction, TransactionMode } from '@libsql/client';
import { isRead, sqlOf } from './statements.ts';

export type SynchronousLevel = 'normal' | 'full';

const LEVEL: Record<SynchronousLevel, number> = { normal: 1, full: 2 };
const BEGIN: Record<TransactionMode, string> = { write: 'BEGIN IMMEDIATE', deferred: 'BEGIN DEFERRED', read: 'BEGIN TRANSACTION READONLY' };
/** Statements SQLite refuses inside a transaction: they run as they are (still one writer at a time, write-queue.ts). */
const OUTSIDE_TRANSACTION = /^\s*(vacuum|attach|detach)\b/i;

/** Per-connection settings of writing connections besides `synchronous` (each checked by a PRAGMA read per write). */
export interface WriterSettings {
  /** `PRAGMA wal_autocheckpoint` (wal-checkpointer.ts). */
  autocheckpoint?: number;
  /** `PRAGMA cache_size` in KiB (WRITER_CACHE_KIB). */
  cacheKiB?: number;
}

/**
 * Page cache of a writing connection. SQLite's default (2 MiB) is smaller than one ingest batch (500
 * `stats` windows of 7 KiB write ≈ 3.5 MiB): a batch spilled dirty pages and re-read index pages it had
 * just evicted. With 16 MiB a batch's SQLite work cost ≈ 18 % less CPU per window (in-process, 78 batches
 * each side alternated, 2026-12-04, load 15–19); 8–64 MiB measured alike alone.
 */
export const WRITER_CACHE_KIB = 16_384;

/**
 * Wraps `client` so that every write runs on a connection set to `level` (and to `settings`). Local files
 * only (a remote server has its own durability).
 */
export function synchronousOnEveryWrite(client: Client, level: SynchronousLevel, settings: WriterSettings = {}): Client {
  const want = LEVEL[level];
  const { autocheckpoint, cacheKiB } = settings;
  const also = (autocheckpoint === undefined ? '' : `PRAGMA wal_autocheckpoint = ${autocheckpoint}; `) + (cacheKiB === undefined ? '' : `PRAGMA cache_size = ${-cacheKiB}; `);
  /** Whether the connection `tx` holds has the settings (one PRAGMA read each). */
  const isSet = async (tx: Transaction) => {
    if (Number((await tx.execute('PRAGMA synchronous')).rows[0]?.[0]) !== want) return false;
    if (cacheKiB !== undefined && Number((await tx.execute('PRAGMA cache_size')).rows[0]?.[0]) !== -cacheKiB) return false;
    return autocheckpoint === undefined || Number((await tx.execute('PRAGMA wal_autocheckpoint')).rows[0]?.[0]) === autocheckpoint;
  };
  const open = client.transaction.bind(client) as (mode?: TransactionMode) => Promise<Transaction>;
  const begin = async (mode: TransactionMode = 'write'): Promise<Transaction> => {
    const tx = await open(mode);
    if (mode === 'read') return tx; // a reader commits nothing
    try {
      if (!(await isSet(tx))) await tx.executeMultiple(`COMMIT; PRAGMA synchronous = ${want}; ${also}${BEGIN[mode]}`);
    } catch (err) {
      tx.close();
      throw err;
    }
    return tx;
  };
  client.transaction = begin as Client['transaction'];

  // A write outside a transaction would commit on whichever pooled connection it borrows: run it as a
  // transaction of its own (one statement, or the batch's statements, as libsql's batch would). Through
  // `begin`, not `client.transaction`: a wrapper applied later (the write queue) has already let it in.
  const execute = client.execute.bind(client) as (...a: unknown[]) => Promise<unknown>;
  client.execute = (async (stmt: InStatement, ...rest: unknown[]) => {
    if (isRead(stmt) || OUTSIDE_TRANSACTION.test(sqlOf(stmt))) return execute(stmt, ...rest);
    const tx = await begin('write');
    try {
      const result = await tx.execute(typeof stmt === 'string' && rest.length ? { sql: stmt, args: rest[0] as never } : stmt);
      await tx.commit();
      return result;
    } finally {
      tx.close();
    }
  }) as Client['execute'];

  const batch = client.batch.bind(client) as (stmts: InStatement[], mode?: TransactionMode) => Promise<unknown>;
  client.batch = (async (stmts: InStatement[], mode: TransactionMode = 'deferred') => {
    if (mode === 'read' || stmts.every(isRead)) return batch(stmts, mode);
    const tx = await begin(mode);
    try {
      const results = await tx.batch(stmts);
      await tx.commit();
      return results;
    } finally {
      tx.close();
    }
  }) as Client['batch'];
  return client;
}
