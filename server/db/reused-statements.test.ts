// Marked statements are prepared once per connection and run again: later transactions re-run them (no new
// prepare), a statement that failed runs correctly the next time, a table rebuilt between runs is picked up,
// and a closed client's statements go with it (the file opens again and the statements work).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openDatabase } from './client.ts';
import { reused, reusedStatementCounts } from './reused-statements.ts';

describe('reused prepared statements', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-reused-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a marked text is prepared once, then re-run in later transactions with their own arguments', async () => {
    const { client } = await openDatabase(`file:${path.join(dir, 'a.db')}`);
    try {
      await client.execute('CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)');
      const insert = reused('INSERT INTO t (k, v) VALUES (?, ?), (?, ?) ON CONFLICT DO NOTHING RETURNING k, v');
      const before = reusedStatementCounts();
      const results: unknown[] = [];
      for (let i = 0; i < 5; i++) {
        const tx = await client.transaction('write');
        results.push((await tx.execute({ sql: insert, args: [2 * i, `a${i}`, 2 * i + 1, `b${i}`] })).rows.map((r) => [Number(r.k), r.v]));
        await tx.commit();
      }
      const after = reusedStatementCounts();
      // One connection in turn: one prepare, four re-runs (the pool reuses its idle connection).
      assert.equal(after.prepared - before.prepared, 1);
      assert.equal(after.reused - before.reused, 4);
      assert.deepEqual(results, [0, 1, 2, 3, 4].map((i) => [[2 * i, `a${i}`], [2 * i + 1, `b${i}`]]));
      // The conflict clause still applies on a re-run: only the new row comes back.
      const tx = await client.transaction('write');
      assert.deepEqual((await tx.execute({ sql: insert, args: [0, 'again', 99, 'new'] })).rows.map((r) => Number(r.k)), [99]);
      await tx.commit();
    } finally {
      client.close();
    }
  });

  test('after a failed run the statement runs again correctly; a table rebuilt between runs is picked up', async () => {
    const { client } = await openDatabase(`file:${path.join(dir, 'b.db')}`);
    try {
      await client.execute('CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)');
      const insert = reused('INSERT INTO t (k, v) VALUES (?, ?) RETURNING k, v');
      const tx = await client.transaction('write');
      await assert.rejects(tx.execute({ sql: insert, args: [1, null] }), /NOT NULL/);
      assert.deepEqual((await tx.execute({ sql: insert, args: [1, 'one'] })).rows.map((r) => [Number(r.k), r.v]), [[1, 'one']]);
      await tx.commit();
      // As a migration rebuilds a table: the statement prepared against the old one is compiled again by SQLite.
      await client.executeMultiple("DROP TABLE t; CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL, w TEXT DEFAULT 'w')");
      const tx2 = await client.transaction('write');
      assert.deepEqual((await tx2.execute({ sql: insert, args: [2, 'two'] })).rows.map((r) => [Number(r.k), r.v]), [[2, 'two']]);
      await tx2.commit();
      assert.deepEqual((await client.execute('SELECT k, v, w FROM t')).rows.map((r) => [Number(r.k), r.v, r.w]), [[2, 'two', 'w']]);
    } finally {
      client.close();
    }
  });

  test('a closed client takes its statements with it: the file opens again and they work', async () => {
    const file = `file:${path.join(dir, 'c.db')}`;
    const insert = reused('INSERT INTO t (k) VALUES (?)');
    const first = await openDatabase(file);
    await first.client.execute('CREATE TABLE t (k INTEGER PRIMARY KEY)');
    await first.client.execute({ sql: insert, args: [1] });
    first.client.close();
    const second = await openDatabase(file);
    try {
      await second.client.execute({ sql: insert, args: [2] });
      assert.deepEqual((await second.client.execute('SELECT k FROM t ORDER BY k')).rows.map((r) => Number(r.k)), [1, 2]);
    } finally {
      second.client.close();
    }
  });
});
