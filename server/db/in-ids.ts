// `column in (ids)` with the ids bound as one JSON parameter (json_each): one small statement whatever
// the number of ids, where drizzle's inArray binds one variable per id (slow to build for thousands,
// and capped by SQLite's variable limit). `column` may be raw SQL, e.g. an aliased column in a hand-written query.
import { sql, type Column, type SQL } from 'drizzle-orm';

export function inIds(column: Column | SQL, ids: readonly string[]): SQL {
  return sql`${column} in (select value from json_each(${JSON.stringify(ids)}))`;
}
