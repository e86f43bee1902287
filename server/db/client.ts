// Opens the libsql database and applies committed migrations at start.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient, type Client } from '@libsql/client';
import { drizzle, type LibSQLDatabase } from 'drizzle-orm/libsql';
import { migrate } from 'drizzle-orm/libsql/migrator';
import * as schema from './schema.ts';
import { reusePreparedStatements } from './reused-statements.ts';
import { synchronousOnEveryWrite, WRITER_CACHE_KIB, type SynchronousLevel } from './synchronous.ts';
import { checkpointInWorker, WAL_AUTOCHECKPOINT_PAGES } from './wal-checkpointer.ts';
import { queueTransactions } from './write-queue.ts';

export type Db = LibSQLDatabase<typeof schema>;
/** A transaction or the database: services take whichever their caller holds. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0] | Db;

const MIGRATIONS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');
/** How long a writer waits for another one's lock (another replica's, or this process's queue) before SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 10_000;

export interface OpenDatabaseOptions {
  /** `PRAGMA synchronous` of every connection that writes (local files; see synchronous.ts). Default `normal`. */
  synchronous?: SynchronousLevel;
}

export async function openDatabase(url: string, opts: OpenDatabaseOptions = {}): Promise<{ db: Db; client: Client }> {
  if (url.startsWith('file:')) mkdirSync(path.dirname(url.slice('file:'.length)), { recursive: true });
  // The client keeps a pool of connections and opens more whenever a transaction holds one: a
  // `PRAGMA busy_timeout` would reach only the connection that ran it (the others failed at once with
  // SQLITE_BUSY when a replica held the lock), so the timeout is a client option, set on every connection.
  const client = createClient({ url, timeout: BUSY_TIMEOUT_MS });
  if (url.startsWith('file:')) {
    // WAL lets readers run during a write (a database setting, stored in the file).
    await client.execute('PRAGMA journal_mode = WAL');
    await client.execute('PRAGMA foreign_keys = ON');
    // Checkpoints run in a worker thread, not inside the commits of the event loop's writers (wal-checkpointer.ts).
    // … and every writing connection gets a page cache that holds an ingest batch (synchronous.ts).
    synchronousOnEveryWrite(client, opts.synchronous ?? 'normal', { autocheckpoint: WAL_AUTOCHECKPOINT_PAGES, cacheKiB: WRITER_CACHE_KIB });
    const checkpointer = checkpointInWorker(path.resolve(url.slice('file:'.length)), { onError: (err) => process.emitWarning(`WAL checkpointer failed (${err.message}); writers checkpoint past ${WAL_AUTOCHECKPOINT_PAGES} pages`) });
    const close = client.close.bind(client);
    client.close = () => {
      // The worker's connection first: stop() returns once it is closed (whoever closes may delete the folder
      // next); its promise is only the thread's exit.
      void checkpointer.stop();
      close();
    };
    // drizzle opens its transactions `BEGIN IMMEDIATE` (libsql's default "write" mode): the write lock
    // is taken at the start, so a transaction never fails half-way upgrading a read to a write.
    queueTransactions(client, BUSY_TIMEOUT_MS, path.resolve(url.slice('file:'.length)));
    // Ingest's fixed-shape statements are prepared once per connection (reused-statements.ts).
    reusePreparedStatements();
  }
  const db = drizzle(client, { schema });
  await migrate(db, { migrationsFolder: MIGRATIONS });
  return { db, client };
}
