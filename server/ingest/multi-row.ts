// Multi-row statements with bound parameters: `INSERT … VALUES (?, ?), (?, ?) …` in slices that stay
// under SQLite's limit of bound parameters per statement. Replaces the earlier form that sent a batch
// as one JSON array parameter read back through `json_each` and `value->>n`: SQLite re-parses a row's
// JSON text for every `->>`, so a stats window (its sketch as 8 KiB of hex) was parsed nine times, and
// the blob went through hex both ways. Measured on 5,000 windows: 160–190 → 58 CPU µs per inserted row.
import { sql, type SQL } from 'drizzle-orm';

/** SQLite (3.32+, libsql) allows 32,766 parameters per statement; the slices stay below. */
const MAX_PARAMS = 30_000;

/** Splits `rows` (all of the same width) into slices that fit in one statement each. */
export function paramSlices<T extends readonly unknown[]>(rows: T[]): T[][] {
  if (!rows.length) return [];
  const per = Math.max(1, Math.floor(MAX_PARAMS / rows[0].length));
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += per) out.push(rows.slice(i, i + per));
  return out;
}

/** `(?, ?, …), (?, ?, …)` for the rows: one bound parameter per value (Buffers bind as blobs). */
export function valuesList(rows: readonly (readonly unknown[])[]): SQL {
  return sql.join(
    rows.map((r) => sql`(${sql.join(r.map((v) => sql`${v}`), sql`, `)})`),
    sql`, `,
  );
}
