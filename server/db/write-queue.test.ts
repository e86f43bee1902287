// Write transactions of one process on a SQLite file: overlapping ones (each awaiting real I/O in its
// body, as enrollment does while the broker learns credentials) are queued, not failed with
// SQLITE_BUSY, and a failed one lets the next run.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@libsql/client';
import { sql } from 'drizzle-orm';
import { type Db, openDatabase } from './client.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('write transactions of one process', () => {
  let dir: string;
  let db: Db;
  let client: Client;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-write-queue-'));
    ({ db, client } = await openDatabase(`file:${path.join(dir, 'db.sqlite')}`));
    await client.execute('CREATE TABLE q (who TEXT, step INTEGER)');
  });
  after(async () => {
    client.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('overlapping transactions that await I/O all commit, one after the other', async () => {
    const write = (who: string) =>
      db.transaction(async (tx) => {
        await tx.run(sql`INSERT INTO q VALUES (${who}, 1)`);
        await sleep(20); // a macrotask: the others' requests arrive meanwhile
        await tx.run(sql`INSERT INTO q VALUES (${who}, 2)`);
      });
    const results = await Promise.allSettled(['a', 'b', 'c', 'd'].map(write));
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled'], JSON.stringify(results.filter((r) => r.status === 'rejected')));
    const rows = (await client.execute('SELECT who, step FROM q ORDER BY rowid')).rows.map((r) => `${r.who}${r.step}`);
    // Not interleaved: each transaction ran alone.
    assert.deepEqual(rows, ['a1', 'a2', 'b1', 'b2', 'c1', 'c2', 'd1', 'd2']);
  });

  test('a transaction that throws rolls back and the next one runs', async () => {
    await client.execute('DELETE FROM q');
    const failing = db.transaction(async (tx) => {
      await tx.run(sql`INSERT INTO q VALUES ('x', 1)`);
      await sleep(10);
      throw new Error('boom');
    });
    const next = db.transaction(async (tx) => {
      await tx.run(sql`INSERT INTO q VALUES ('y', 1)`);
    });
    await assert.rejects(failing, /boom/);
    await next;
    const rows = (await client.execute('SELECT who FROM q')).rows.map((r) => r.who);
    assert.deepEqual(rows, ['y']);
  });

  test('a write outside any transaction waits for the open one instead of failing or freezing the event loop', async () => {
    await client.execute('DELETE FROM q');
    const open = db.transaction(async (tx) => {
      await tx.run(sql`INSERT INTO q VALUES ('t', 1)`);
      await sleep(20);
      await tx.run(sql`INSERT INTO q VALUES ('t', 2)`);
    });
    await sleep(5); // the transaction holds the write lock now
    const single = db.run(sql`INSERT INTO q VALUES ('s', 1)`);
    const [a, b] = await Promise.allSettled([open, single]);
    assert.deepEqual([a.status, b.status], ['fulfilled', 'fulfilled'], JSON.stringify([a, b]));
    const rows = (await client.execute('SELECT who, step FROM q ORDER BY rowid')).rows.map((r) => `${r.who}${r.step}`);
    assert.deepEqual(rows, ['t1', 't2', 's1']);
  });

  test('a second client of the same file in this process waits in the same queue instead of blocking the event loop in busy_timeout', async () => {
    await client.execute('DELETE FROM q');
    const other = await openDatabase(`file:${path.join(dir, 'db.sqlite')}`);
    try {
      const open = db.transaction(async (tx) => {
        await tx.run(sql`INSERT INTO q VALUES ('t', 1)`);
        await sleep(50);
        await tx.run(sql`INSERT INTO q VALUES ('t', 2)`);
      });
      await sleep(5); // the transaction holds the write lock now
      const started = performance.now();
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 5);
      const single = other.db.run(sql`INSERT INTO q VALUES ('s', 1)`);
      const [a, b] = await Promise.allSettled([open, single]);
      clearInterval(ticker);
      assert.deepEqual([a.status, b.status], ['fulfilled', 'fulfilled'], JSON.stringify([a, b]));
      assert.ok(performance.now() - started < 2000, `waited ${Math.round(performance.now() - started)} ms (busy_timeout is 10 s)`);
      assert.ok(ticks >= 3, `the event loop ran ${ticks} timer ticks while the second client waited`);
      const rows = (await client.execute('SELECT who, step FROM q ORDER BY rowid')).rows.map((r) => `${r.who}${r.step}`);
      assert.deepEqual(rows, ['t1', 't2', 's1']);
    } finally {
      other.client.close();
    }
  });
});
