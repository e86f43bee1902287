// A long write transaction on the local database file gives the event loop turns between its statements
// (server/db/write-queue.ts). libsql's file client is synchronous, so without it a transaction body (an ingest
// batch) ran in one loop turn, and the MQTT listener, which Node 20 accepts from once per turn, took ≈ 1–2
// connections/s on a loaded machine. Real libsql file, real drizzle transaction, real TCP listener.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { sql } from 'drizzle-orm';
import { openDatabase, type Db } from '../server/db/client.ts';

let dir: string;
let db: Db;
let close: () => void;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'flotilla-tx-yields-'));
  const opened = await openDatabase(`file:${path.join(dir, 'flotilla.db')}`);
  db = opened.db;
  close = () => opened.client.close();
  await db.run(sql`CREATE TABLE yield_probe (n INTEGER)`);
});

after(async () => {
  close();
  await rm(dir, { recursive: true, force: true });
});

/** Inserts rows one statement at a time for at least `ms` (at most 200,000 rows); calls `each` after every statement. */
async function longTransaction(ms: number, each: () => void): Promise<number> {
  return db.transaction(async (tx) => {
    const start = performance.now();
    let n = 0;
    while (performance.now() - start < ms && n < 200_000) {
      await tx.run(sql`INSERT INTO yield_probe (n) VALUES (${n++})`);
      each();
    }
    return n;
  });
}

test('an immediate scheduled before a long transaction runs before the transaction ends', async () => {
  let ran = false;
  setImmediate(() => (ran = true));
  let ranAtStatement = -1;
  let statements = 0;
  await longTransaction(50, () => {
    statements++;
    if (ran && ranAtStatement < 0) ranAtStatement = statements;
  });
  assert.ok(ranAtStatement > 0, `the event loop never turned during ${statements} statements`);
  const rows = await db.all<{ c: number }>(sql`SELECT count(*) AS c FROM yield_probe`);
  assert.equal(rows[0].c, statements, 'every statement committed');
});

test('a TCP listener accepts connections while a long transaction runs', async () => {
  let accepted = 0;
  const server = createServer((s) => {
    accepted++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  // Connections opened from inside the transaction can only be accepted when the loop turns.
  const sockets: ReturnType<typeof connect>[] = [];
  let acceptedDuring = 0;
  await longTransaction(100, () => {
    if (!sockets.length) for (let i = 0; i < 20; i++) sockets.push(connect(port, '127.0.0.1').on('error', () => {}));
    acceptedDuring = accepted;
  });
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  assert.ok(acceptedDuring > 0, 'no connection was accepted while the transaction ran');
});
