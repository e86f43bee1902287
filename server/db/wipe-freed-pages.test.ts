// wipeFreedPages: after it, a deleted secret is in neither the database file nor its write-ahead log,
// also when another connection was reading at the time (its checkpoint answered busy at first).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createClient } from '@libsql/client';
import { sql } from 'drizzle-orm';
import { openDatabase } from './client.ts';
import { wipeFreedPages } from './wipe-freed-pages.ts';

let dir: string;
before(async () => (dir = await mkdtemp(path.join(tmpdir(), 'flotilla-wipe-'))));
after(() => rm(dir, { recursive: true, force: true }));

const fileBytes = async (file: string) => Buffer.concat(await Promise.all(['', '-wal'].map((s) => readFile(file + s).catch(() => Buffer.alloc(0)))));

test('a secret deleted while another connection holds a read snapshot is gone from the file and the log once that reader ends', async () => {
  const file = path.join(dir, 'db.sqlite');
  const { db, client } = await openDatabase(`file:${file}`);
  const secret = `secret-${'k'.repeat(64)}`;
  await db.run(sql`create table vault (id integer primary key, material text)`);
  await db.run(sql`insert into vault (material) values (${secret})`);
  await db.run(sql`delete from vault`);
  // A reader on its own connection, holding its snapshot (which still sees the secret) for 400 ms.
  const reader = createClient({ url: `file:${file}` });
  const tx = await reader.transaction('read');
  assert.equal((await tx.execute('select count(*) from vault')).rows[0][0], 0);
  const released = new Promise<void>((resolve) => setTimeout(() => void tx.commit().then(resolve), 400));
  assert.ok((await fileBytes(file)).includes(secret), 'before: the secret is still in the file or its log');
  await wipeFreedPages(db);
  await released;
  assert.ok(!(await fileBytes(file)).includes(secret), 'after: gone from the file and the log');
  reader.close();
  client.close();
});
