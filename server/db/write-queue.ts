// One open write transaction per process on a local SQLite file. libsql's file client runs every
// statement synchronously on a pool of connections, and a transaction keeps its connection (and,
// opened `BEGIN IMMEDIATE`, the file's write lock) across the awaits of its body. A second
// transaction of the same process on another connection would then wait for the lock inside a
// synchronous call (busy_timeout), blocking the event loop that the first one needs to finish: a
// freeze until the timeout, then SQLITE_BUSY. Queued here instead, the second waits asynchronously;
// the busy timeout is left for what it is meant for, another process (a replica) holding the lock.
import type { Client, Transaction, TransactionMode } from '@libsql/client';

export class WriteQueueTimeoutError extends Error {
  constructor(ms: number) {
    super(`SQLITE_BUSY: waited ${ms} ms for this process's open write transaction (a transaction opened inside another?)`);
    this.name = 'WriteQueueTimeoutError';
  }
}

/**
 * Makes `client.transaction()` wait for this process's previous transaction to commit, roll back or
 * close. The wait is bounded by `timeoutMs` (then it throws, as SQLITE_BUSY would), so a transaction
 * opened inside another one's body fails instead of hanging.
 */
export function queueTransactions(client: Client, timeoutMs: number): Client {
  const open = client.transaction.bind(client) as (mode?: TransactionMode) => Promise<Transaction>;
  let tail: Promise<void> = Promise.resolve();
  client.transaction = (async (mode?: TransactionMode) => {
    const previous = tail;
    let release!: () => void;
    tail = new Promise<void>((r) => (release = r));
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
    let tx: Transaction;
    try {
      tx = await open(mode);
    } catch (err) {
      release();
      throw err;
    }
    // Whichever way the transaction ends, the next one may start.
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
  return client;
}
