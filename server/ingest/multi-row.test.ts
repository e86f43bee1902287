// insertRows: one batch bigger than SQLite's parameter limit goes in several statements whose RETURNING
// rows are all collected, values keep their types (blobs byte for byte, null, integers, reals, text),
// an ON CONFLICT tail applies to every slice, and it runs inside the caller's transaction (a rollback
// takes its rows back). Batches are cut into a few fixed slice sizes (so their statements can stay prepared)
// and come back exactly as one statement per row would store and return them.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'drizzle-orm';
import { openDatabase, type Db } from '../db/client.ts';
import { insertRows, sliceSizes } from './multi-row.ts';

describe('insertRows (multi-row statements)', () => {
  let dir: string;
  let db: Db;
  let close: () => void;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'multi-row-'));
    const opened = await openDatabase(`file:${path.join(dir, 'db.sqlite')}`);
    db = opened.db;
    close = () => opened.client.close();
    await db.run(sql`CREATE TABLE t (k TEXT NOT NULL, n INTEGER NOT NULL, r REAL, b BLOB, x TEXT, PRIMARY KEY (k, n))`);
  });
  after(() => {
    close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('splits past the parameter limit, returns every inserted row and keeps types', async () => {
    // 5 columns × 7,000 rows = 35,000 parameters: more than one statement may take.
    const rows = Array.from({ length: 7000 }, (_, i) => [`k${i % 7}`, i, i / 3, Buffer.from([i & 255, 0, 255, (i >> 8) & 255]), i % 2 ? null : `x${i}`]);
    const returned = await db.transaction((tx) => insertRows(tx, 'INSERT INTO t (k, n, r, b, x)', rows, 'ON CONFLICT DO NOTHING RETURNING k, n'));
    assert.equal(returned.length, 7000);
    assert.deepEqual(new Set(returned.map((r) => Number(r.n))).size, 7000);
    const back = await db.all<{ k: string; n: number; r: number; b: ArrayBuffer; x: string | null; tb: string; tn: string }>(sql`SELECT k, n, r, b, x, typeof(b) AS tb, typeof(n) AS tn FROM t WHERE n IN (0, 1, 6999) ORDER BY n`);
    assert.deepEqual(back.map((r) => [r.k, r.n, r.r, Buffer.from(r.b).toString('hex'), r.x, r.tb, r.tn]), [
      ['k0', 0, 0, '0000ff00', 'x0', 'blob', 'integer'],
      ['k1', 1, 1 / 3, '0100ff00', null, 'blob', 'integer'],
      ['k6', 6999, 2333, '5700ff1b', null, 'blob', 'integer'],
    ]);
  });

  it('applies the conflict clause in every slice: only new rows come back', async () => {
    const rows = Array.from({ length: 7002 }, (_, i) => [`k${i % 7}`, i, 0, Buffer.alloc(1), null]);
    const returned = await db.transaction((tx) => insertRows(tx, 'INSERT INTO t (k, n, r, b, x)', rows, 'ON CONFLICT DO NOTHING RETURNING n'));
    assert.deepEqual(returned.map((r) => Number(r.n)).sort((a, b) => a - b), [7000, 7001]);
  });

  it('writes inside the caller transaction: a rollback removes its rows', async () => {
    await assert.rejects(
      db.transaction(async (tx) => {
        await insertRows(tx, 'INSERT INTO t (k, n, r, b, x)', [['gone', 1, 0, null, null]]);
        throw new Error('roll back');
      }),
      /roll back/,
    );
    const left = await db.all(sql`SELECT 1 FROM t WHERE k = 'gone'`);
    assert.equal(left.length, 0);
  });

  it('cuts any batch into fixed slice sizes that cover it exactly, each under the parameter limit', () => {
    for (const width of [1, 9, 15, 200]) {
      for (let n = 0; n <= 2100; n++) {
        const sizes = sliceSizes(n, width);
        assert.equal(sizes.reduce((a, b) => a + b, 0), n);
        assert.ok(sizes.every((s) => s * width <= 30_000));
        assert.deepEqual(sizes, [...sizes].sort((a, b) => b - a));
      }
    }
    // A handful of distinct statement texts serve every batch size: what lets a connection keep them prepared.
    assert.deepEqual(new Set(Array.from({ length: 2101 }, (_, n) => sliceSizes(n, 9)).flat()), new Set([256, 64, 16, 4, 1]));
  });

  it('stores and returns the same rows, in order, as one statement per row would, for every size across the slice edges', async () => {
    await db.run(sql`CREATE TABLE s (k TEXT NOT NULL, n INTEGER NOT NULL, b BLOB, PRIMARY KEY (k, n))`);
    let next = 0;
    for (const n of [1, 3, 4, 5, 15, 16, 17, 63, 64, 65, 255, 256, 257, 341, 500, 777]) {
      // Every third row repeats one already stored: the conflict clause drops it in whichever slice it falls.
      const rows = Array.from({ length: n }, (_, i) => (i % 3 === 2 && next > 0 ? ['s', next - 1, Buffer.from([1])] : ['s', next++, Buffer.from([i & 255, n & 255])]));
      const returned = await db.transaction((tx) => insertRows(tx, 'INSERT INTO s (k, n, b)', rows, 'ON CONFLICT DO NOTHING RETURNING k, n, b'));
      const fresh = rows.filter((r) => (r[2] as Buffer).length === 2);
      assert.deepEqual(
        returned.map((r) => [r.k, Number(r.n), Buffer.from(r.b as ArrayBuffer).toString('hex')]),
        fresh.map((r) => [r[0], r[1], (r[2] as Buffer).toString('hex')]),
        `n = ${n}`,
      );
    }
    const count = await db.all<{ c: number }>(sql`SELECT count(*) AS c FROM s`);
    assert.equal(count[0].c, next);
  });

  it('does nothing for no rows', async () => {
    assert.deepEqual(await db.transaction((tx) => insertRows(tx, 'INSERT INTO t (k, n, r, b, x)', [])), []);
  });
});
