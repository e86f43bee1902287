// WAL checkpoints happen in the checkpointer's worker, not inside the commits of the process's writers:
// a commit that takes the WAL far past SQLite's default threshold (1,000 pages) leaves the database file
// as it was, every writing connection has the raised threshold, the worker copies the WAL into the file
// soon after, and it stops with the client.
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openDatabase } from './client.ts';
import { checkpointInWorker, WAL_AUTOCHECKPOINT_PAGES } from './wal-checkpointer.ts';

describe('WAL checkpoints off the event loop', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-checkpointer-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a large commit does not checkpoint; the worker does, soon after', async () => {
    const file = path.join(dir, 'big.db');
    const { client } = await openDatabase(`file:${file}`);
    try {
      await client.execute('CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB)');
      const size0 = (await stat(file)).size;
      const tx = await client.transaction('write');
      assert.equal(Number((await tx.execute('PRAGMA wal_autocheckpoint')).rows[0][0]), WAL_AUTOCHECKPOINT_PAGES, 'the writing connection has the raised threshold');
      // ≈ 2,600 pages of 4 KiB: well past the default threshold of 1,000.
      for (let i = 0; i < 20; i++) {
        await tx.execute({ sql: `INSERT INTO blobs (b) VALUES ${new Array(100).fill('(?)').join(', ')}`, args: Array.from({ length: 100 }, (_, k) => Buffer.alloc(5000, (i * 100 + k) % 251)) });
      }
      await tx.commit();
      const afterCommit = (await stat(file)).size;
      assert.ok(afterCommit - size0 < 1_000_000, `the commit copied nothing into the database file (${size0} → ${afterCommit} bytes)`);
      const deadline = Date.now() + 20_000;
      let size = afterCommit;
      while (size < size0 + 9_000_000 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        size = (await stat(file)).size;
      }
      assert.ok(size >= size0 + 9_000_000, `the worker checkpointed the WAL into the file (${size} bytes)`);
      assert.equal(Number((await client.execute('SELECT count(*) FROM blobs')).rows[0][0]), 2000);
    } finally {
      client.close();
    }
  });

  test('stop() ends the worker and closes its connection', async () => {
    const file = path.join(dir, 'stop.db');
    const { client } = await openDatabase(`file:${file}`);
    client.close();
    const checkpointer = checkpointInWorker(file, { everyMs: 10 });
    const deadline = Date.now() + 20_000;
    while ((await checkpointer.runs()) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok((await checkpointer.runs()) > 0, 'it ran');
    await checkpointer.stop(); // resolves once the thread exited
  });
});
