// Statements prepared once per connection and run again, for the SQL texts marked here. libsql's file client
// prepares every statement it runs (`db.prepare(sql)` per call, @libsql/client's sqlite3.js), and a fresh
// statement costs more than its compile: inserting 500 rows of 7 KiB as one multi-row statement took
// ≈ 100 CPU µs per row freshly prepared, ≈ 50 re-run (2026-12-04, libsql 0.5.29, alone in a loop). The cache
// sits under the client, on the native `Database` it uses, so statements still run on the connection the
// caller's transaction holds, inside the write queue and its transaction (write-queue.ts). Only marked texts
// are kept: ingest's fixed-shape statements (multi-row.ts), a bounded set, not every query the server builds.
// A marked text names its result columns (no `*`): SQLite recompiles a kept statement after a schema change,
// but the client reads the column names before running it, so a `*` that grew would come back misnamed once.
import { createRequire } from 'node:module';

interface NativeStatement {
  all(...args: unknown[]): unknown[];
}
interface NativeDatabase {
  prepare(sql: string): NativeStatement;
}

const marked = new Set<string>();
const cache = new WeakMap<NativeDatabase, Map<string, NativeStatement>>();
let preparedCount = 0;
let reusedCount = 0;

/** Marks `sql` as run again and again: each connection prepares it once. Returns it, for inline use. */
export function reused(sql: string): string {
  marked.add(sql);
  return sql;
}

/** Statements of marked texts prepared and re-run so far in this process (for tests and profiles). */
export function reusedStatementCounts(): { prepared: number; reused: number } {
  return { prepared: preparedCount, reused: reusedCount };
}

let installed = false;

/**
 * Makes libsql's connections keep their statements of marked texts (once per process; the `libsql` module
 * is the one @libsql/client loads, resolved from it). Idempotent.
 */
export function reusePreparedStatements(): void {
  if (installed) return;
  installed = true;
  const fromClient = createRequire(createRequire(import.meta.url).resolve('@libsql/client'));
  const Database = fromClient('libsql') as { prototype: NativeDatabase };
  const prepare = Database.prototype.prepare;
  Database.prototype.prepare = function (this: NativeDatabase, sql: string): NativeStatement {
    if (!marked.has(sql)) return prepare.call(this, sql);
    let mine = cache.get(this);
    if (!mine) cache.set(this, (mine = new Map()));
    let stmt = mine.get(sql);
    if (stmt) reusedCount++;
    else {
      // A failed prepare (a syntax error, a missing table) throws here and caches nothing.
      mine.set(sql, (stmt = prepare.call(this, sql)));
      preparedCount++;
    }
    return stmt;
  };
}
