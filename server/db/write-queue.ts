// One writer at a time per process on a local SQLite file. libsql's file client runs every statement
// synchronously on a pool of connections, and a transaction keeps its connection (and, opened
// `BEGIN IMMEDIATE`, the file's write lock) across the awaits of its body. Any other write of the same
// process — a second transaction, or a single INSERT/UPDATE outside one — would then wait for the lock
// inside a synchronous call (busy_timeout), blocking the event loop that the first one needs to finish:
// a freeze until the timeout, then SQLITE_BUSY. Queued here instead, it waits asynchronously; the busy
// timeout is left for what it is meant for, another process (a replica) holding the lock. Reads never
// wait (WAL: readers run beside a writer).
import type { Client, InStatement, Transaction, TransactionMode } from '@libsql/client';
import { isRead } from './statements.ts';

export class WriteQueueTimeoutError extends Error {
  constructor(ms: number) {
    super(`SQLITE_BUSY: waited ${ms} ms for this process's open write transaction (a write issued inside a transaction body through the database instead of the transaction?)`);
    this.name = 'WriteQueueTimeoutError';
  }
}

/** The writer queue of each database file this process opened (by resolved path). */
const queues = new Map<string, { tail: Promise<void> }>();

/**
 * A write transaction gives the event loop a turn once it has run this long without one (short transactions never do). libsql's file client
 * is synchronous, so every await in a transaction body resolves as a microtask and a whole body (an ingest
 * batch: hundreds of statements) ran in a single loop turn. Node 20 accepts one connection per turn (libuv
 * PR #3696): on a loaded machine batches of 0.5–1 s left the MQTT listener accepting ≈ 1–2 connections/s while
 * 19,900 devices waited. Yielding between statements keeps turns short; the transaction keeps the write lock
 * (other writers of this process wait in the queue below), only its wall time grows.
 */
export const TRANSACTION_SLICE_MS = 20;

/**
 * Makes `client.transaction()` and writes through `client.execute()`/`client.batch()` wait for this
 * process's previous writer to finish. The wait is bounded by `timeoutMs` (then it throws, as
 * SQLITE_BUSY would), so a write issued inside another transaction's body fails instead of hanging.
 */
export function queueTransactions(client: Client, timeoutMs: number, file: string): Client {
  // One queue per file, not per client: two clients of one process on the same file (a test's two
  // "replicas", a tool beside the server) would otherwise block each other inside busy_timeout.
  let queue = queues.get(file);
  if (!queue) queues.set(file, (queue = { tail: Promise.resolve() }));
  const shared = queue;
  /** Takes this process's writer slot; the returned function gives it back. */
  const enter = async (): Promise<() => void> => {
    const previous = shared.tail;
    let release!: () => void;
    shared.tail = new Promise<void>((r) => (release = r));
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([previous, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new WriteQueueTimeoutError(timeoutMs)), timeoutMs)))]);
    } catch (err) {
      // Give up our place without releasing the ones ahead: the next waiter still waits for them.
      void previous.then(release);
      throw err;
    } finally {
      clearTimeout(timer);
    }
    return release;
  };

  const open = client.transaction.bind(client) as (mode?: TransactionMode) => Promise<Transaction>;
  client.transaction = (async (mode?: TransactionMode) => {
    if (mode === 'read') return open(mode);
    const release = await enter();
    let tx: Transaction;
    try {
      tx = await open(mode);
    } catch (err) {
      release();
      throw err;
    }
    yieldBetweenStatements(tx);
    // Whichever way the transaction ends, the next writer may start.
    for (const end of ['commit', 'rollback'] as const) {
      const fn = tx[end].bind(tx);
      tx[end] = () => fn().finally(release);
    }
    const close = tx.close.bind(tx);
    tx.close = () => {
      try {
        close();
      } finally {
        release();
      }
    };
    return tx;
  }) as Client['transaction'];

  const execute = client.execute.bind(client) as (stmt: InStatement) => Promise<unknown>;
  client.execute = (async (stmt: InStatement, ...rest: unknown[]) => {
    if (isRead(stmt)) return (execute as (...a: unknown[]) => Promise<unknown>)(stmt, ...rest);
    const release = await enter();
    try {
      return await (execute as (...a: unknown[]) => Promise<unknown>)(stmt, ...rest);
    } finally {
      release();
    }
  }) as Client['execute'];

  const batch = client.batch.bind(client) as (stmts: InStatement[], mode?: TransactionMode) => Promise<unknown>;
  client.batch = (async (stmts: InStatement[], mode?: TransactionMode) => {
    if (stmts.every(isRead)) return batch(stmts, mode);
    const release = await enter();
    try {
      return await batch(stmts, mode);
    } finally {
      release();
    }
  }) as Client['batch'];
  return client;
}

/** Makes `tx` wait for the next loop turn before a statement (or the commit) once it ran TRANSACTION_SLICE_MS without one. */
function yieldBetweenStatements(tx: Transaction): void {
  let since = performance.now();
  const turn = async () => {
    if (performance.now() - since < TRANSACTION_SLICE_MS) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    since = performance.now();
  };
  for (const name of ['execute', 'batch', 'executeMultiple', 'commit'] as const) {
    const fn = (tx[name] as (...a: unknown[]) => Promise<unknown>).bind(tx);
    (tx as unknown as Record<string, unknown>)[name] = async (...args: unknown[]) => {
      await turn();
      return fn(...args);
    };
  }
}
