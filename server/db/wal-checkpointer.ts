// WAL checkpoints in a worker thread, off the event loop. libsql's file client runs every statement
// synchronously on the main thread, and by default the commit that takes the WAL past 1,000 pages
// copies them into the database file and fsyncs it (`wal_autocheckpoint`) inside that COMMIT: ingest,
// which writes ≈ 7 KiB per `stats` window, hit one at nearly every batch, and the event loop stopped for
// it (10,000 windows: 1.1–1.3 s of commits with checkpoints, 0.2–0.3 s without). Every connection that
// writes has `wal_autocheckpoint` raised to `WAL_AUTOCHECKPOINT_PAGES` (synchronous.ts sets it with
// `synchronous`): a safety net that bounds the WAL should the worker fail (not reached in the ingest bench).
// A connection of its own in the worker runs `PRAGMA wal_checkpoint(PASSIVE)` every `everyMs`: PASSIVE never waits for a
// lock, writers go on appending while it copies, and the WAL restarts from its beginning once all of it
// was copied. Durability is unchanged (checkpoints were never part of a commit's promise).
//
// The worker is a few lines evaluated as CommonJS (`eval`), with the libsql add-on's path resolved here:
// no entry of its own in the build (scripts/build.mjs), the same code from source and from dist/.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.libsql);
const db = new Database(workerData.file, { timeout: 0 });
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
let runs = 0;
const timer = setInterval(() => {
  try {
    checkpoint.get();
    runs++;
  } catch {
    // SQLITE_BUSY or a database being closed: the next tick tries again.
  }
}, workerData.everyMs);
parentPort.on('message', (m) => {
  if (m === 'runs') return parentPort.postMessage({ runs });
  clearInterval(timer);
  try {
    db.close();
  } finally {
    // The closing thread waits on this flag (stop()): its caller may delete the files next.
    Atomics.store(workerData.closed, 0, 1);
    Atomics.notify(workerData.closed, 0);
    parentPort.close();
  }
});
`;

/** The longest stop() blocks the calling thread for the worker's connection to close (a checkpoint in progress). */
const STOP_WAIT_MS = 5_000;

/** The writers' own threshold (40 MiB of 4 KiB pages; SQLite's default is 1,000). */
export const WAL_AUTOCHECKPOINT_PAGES = 10_000;

export interface WalCheckpointer {
  /** Checkpoints run so far (for tests). */
  runs(): Promise<number>;
  /**
   * Stops the worker and returns once its connection is closed (blocking this thread for at most a few
   * seconds): the database client's close() is synchronous, and a caller that deletes the database's
   * folder right after must not race the worker's last close (which checkpoints and removes the WAL).
   * The promise resolves when the thread has exited.
   */
  stop(): Promise<void>;
}

/**
 * Starts checkpointing the WAL of the database file `file` every `everyMs` from a worker thread.
 * `onError`: the worker failed (the connections' own `wal_autocheckpoint` threshold still bounds the WAL).
 */
export function checkpointInWorker(file: string, opts: { everyMs?: number; onError?: (err: Error) => void } = {}): WalCheckpointer {
  const everyMs = opts.everyMs ?? 200;
  const libsql = createRequire(import.meta.url).resolve('libsql');
  const closed = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(WORKER, { eval: true, workerData: { file, libsql, everyMs, closed } });
  worker.unref(); // never what keeps a process alive
  let gone = false;
  const exited = new Promise<void>((resolve) =>
    worker.once('exit', () => {
      gone = true;
      resolve();
    }),
  );
  worker.on('error', (err) => opts.onError?.(err));
  return {
    runs: () =>
      new Promise((resolve) => {
        worker.ref(); // kept alive while the answer is awaited
        worker.once('message', (m: { runs: number }) => {
          worker.unref();
          resolve(m.runs);
        });
        worker.postMessage('runs');
      }),
    stop: () => {
      if (!gone) {
        worker.ref();
        worker.postMessage('stop');
        Atomics.wait(closed, 0, 0, STOP_WAIT_MS);
      }
      return exited;
    },
  };
}
