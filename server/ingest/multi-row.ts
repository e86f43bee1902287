// Multi-row statements with bound parameters: `INSERT … VALUES (?, ?), (?, ?) …` in slices that stay
// under SQLite's limit of bound parameters per statement. Replaces the earlier form that sent a batch
// as one JSON array parameter read back through `json_each` and `value->>n`: SQLite re-parses a row's
// JSON text for every `->>`, so a stats window (its sketch as 8 KiB of hex) was parsed nine times, and
// the blob went through hex both ways.
//
// The statement goes straight to the transaction's libsql connection: drizzle's `sql` builder walks
// every chunk of a template through a chain of type checks, which at tens of thousands of parameters
// per batch cost more than the insert itself (profiled: ≈ 120 µs per stats window).
//
// Slices have fixed sizes (SLICE_ROWS), so a statement's text repeats from batch to batch and each
// connection prepares it once (server/db/reused-statements.ts) instead of once per batch.
import type { InValue, Row } from '@libsql/client';
import type { Tx } from '../db/client.ts';
import { reused } from '../db/reused-statements.ts';
import { executorOf } from '../db/tx-statement.ts';

/** SQLite (3.32+, libsql) allows 32,766 parameters per statement; the slices stay below. */
const MAX_PARAMS = 30_000;
/** Rows per statement, largest first: a batch of n rows is cut greedily into these, at most 3 of each but the largest. */
export const SLICE_ROWS = [256, 64, 16, 4, 1] as const;

/** The fixed slice sizes that cover `n` rows of `width` values, largest first (each ≤ MAX_PARAMS values). */
export function sliceSizes(n: number, width: number): number[] {
  const out: number[] = [];
  let left = n;
  for (const size of SLICE_ROWS) {
    if (size * width > MAX_PARAMS) continue;
    for (; left >= size; left -= size) out.push(size);
  }
  return out;
}

/**
 * Runs `head VALUES (?, …), … tail` for all `rows` (each of the same width, Buffers bind as blobs), in as
 * many statements as the parameter limit needs, and returns every statement's result rows (RETURNING).
 */
export async function insertRows(tx: Tx, head: string, rows: readonly (readonly InValue[])[], tail = ''): Promise<Row[]> {
  if (!rows.length) return [];
  const exec = executorOf(tx);
  const width = rows[0].length;
  const out: Row[] = [];
  let i = 0;
  for (const size of sliceSizes(rows.length, width)) {
    const args: InValue[] = new Array(size * width);
    for (let r = 0, a = 0; r < size; r++) for (const v of rows[i + r]) args[a++] = v;
    i += size;
    const { rows: result } = await exec.execute({ sql: statementText(head, tail, width, size), args });
    for (const r of result) out.push(r);
  }
  return out;
}

/** `head VALUES (?, …) × rows tail`, built once per shape and marked for reuse. */
const texts = new Map<string, string>();
function statementText(head: string, tail: string, width: number, rows: number): string {
  const key = `${rows}\u0000${width}\u0000${head}\u0000${tail}`;
  let text = texts.get(key);
  if (!text) {
    const tuple = `(${new Array(width).fill('?').join(', ')})`;
    texts.set(key, (text = reused(`${head} VALUES ${new Array(rows).fill(tuple).join(', ')} ${tail}`)));
  }
  return text;
}

/**
 * Inserts one row per device message (`INSERT … ON CONFLICT DO NOTHING`, keyed by device and seq) and
 * returns the items whose row is new: a resend already stored, or the same (device, seq) twice in one
 * batch (only the first insert wins), is left out, so it is rolled up once.
 */
export async function insertNewMessages<T extends { deviceId: string; message: { seq: number } }>(tx: Tx, head: string, items: readonly T[], rowOf: (item: T) => readonly InValue[]): Promise<T[]> {
  const inserted = await insertRows(tx, head, items.map(rowOf), 'ON CONFLICT DO NOTHING RETURNING device_id, seq');
  const added = new Set(inserted.map((r) => `${r.device_id}\u0000${r.seq}`));
  return items.filter((it) => added.delete(`${it.deviceId}\u0000${it.message.seq}`));
}
