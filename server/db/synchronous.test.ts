// `PRAGMA synchronous` is per connection and libsql's client opens connections as it needs them, so the
// setting must reach every connection a write commits on — ingest's batches first of all. Each test
// forces writes onto connections opened after the database was (by holding others with open readers). The
// writers' other settings (the page cache) reach every writing connection the same way.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Client, Transaction, TransactionMode } from '@libsql/client';
import pino from 'pino';
import { telemetryMessage } from '../../test/helpers/device-stats.ts';
import { Ingest } from '../ingest/ingest.ts';
import { Metrics } from '../metrics.ts';
import { openDatabase } from './client.ts';
import { WRITER_CACHE_KIB } from './synchronous.ts';
import { devices, telemetry } from './schema.ts';

const NORMAL = 1;
const FULL = 2;

/** Holds `n` pooled connections with open read transactions, so the next write needs a new one. */
async function holdConnections(client: Client, n: number): Promise<() => void> {
  const readers: Transaction[] = [];
  for (let i = 0; i < n; i++) readers.push(await client.transaction('read'));
  return () => readers.forEach((r) => r.close());
}

/** Records the connection's `synchronous` at every commit of a write transaction, on the connection that commits. */
function spyOnCommits(client: Client): number[] {
  const seen: number[] = [];
  const open = client.transaction.bind(client);
  client.transaction = (async (mode?: TransactionMode) => {
    const tx = await open(mode);
    if (mode === 'read') return tx;
    const commit = tx.commit.bind(tx);
    tx.commit = async () => {
      seen.push(Number((await tx.execute('PRAGMA synchronous')).rows[0][0]));
      return commit();
    };
    return tx;
  }) as Client['transaction'];
  return seen;
}

describe('PRAGMA synchronous on every writing connection', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-synchronous-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('ingest batches commit with NORMAL by default, also on connections opened while others were held', async () => {
    const { db, client } = await openDatabase(`file:${path.join(dir, 'ingest.db')}`);
    try {
      const seen = spyOnCommits(client);
      await db.insert(devices).values({ id: 'dev_synchronous1', status: 'approved', labels: {}, facts: {}, credentialHash: 'sha256$x' });
      const metrics = new Metrics();
      const ingest = new Ingest({ db, metrics, logger: pino({ level: 'silent' }), flushMs: 5, batchSize: 100, retentionHours: 72, minuteRollupRetentionHours: 72, samplesRetentionDays: 7 });
      ingest.start();
      let seq = 0;
      const send = () => ingest.acceptTelemetry('dev_synchronous1', JSON.parse(JSON.stringify(telemetryMessage({ deviceId: 'dev_synchronous1', seq: ++seq, at: new Date(), inferences: 1 }))));
      for (let held = 0; held < 4; held++) {
        const release = await holdConnections(client, held); // this batch runs on connection held + 1
        await send();
        release();
      }
      await ingest.stop();
      assert.equal((await db.select().from(telemetry)).length, 4, `every report stored: ${await metrics.registry.getSingleMetricAsString('flotilla_mqtt_messages_dropped_total')}`);
      assert.equal(seen.length, 4, 'one transaction per batch');
      assert.deepEqual(new Set(seen), new Set([NORMAL]), `synchronous at each commit: ${seen.join(', ')}`);
    } finally {
      client.close();
    }
  });

  test('writes through execute() and batch() outside a transaction run on a NORMAL connection too', async () => {
    const { client } = await openDatabase(`file:${path.join(dir, 'plain.db')}`);
    try {
      await client.execute('CREATE TABLE s (level INTEGER)');
      for (let held = 0; held < 3; held++) {
        const release = await holdConnections(client, held);
        // The statement itself reads the setting of the connection it commits on.
        const one = await client.execute('INSERT INTO s SELECT synchronous FROM pragma_synchronous RETURNING level');
        const [, two] = await client.batch(['INSERT INTO s VALUES (0)', 'SELECT synchronous FROM pragma_synchronous'], 'write');
        release();
        assert.equal(Number(one.rows[0][0]), NORMAL, `execute() with ${held} connections held`);
        assert.equal(Number(two.rows[0][0]), NORMAL, `batch() with ${held} connections held`);
      }
    } finally {
      client.close();
    }
  });

  test('every writing connection has the writers\' page cache, also one opened while others were held', async () => {
    const { client } = await openDatabase(`file:${path.join(dir, 'cache.db')}`);
    try {
      await client.execute('CREATE TABLE c (kib INTEGER)');
      for (let held = 0; held < 3; held++) {
        const release = await holdConnections(client, held);
        const tx = await client.transaction('write');
        const kib = -Number((await tx.execute('PRAGMA cache_size')).rows[0][0]);
        await tx.commit();
        release();
        assert.equal(kib, WRITER_CACHE_KIB, `cache_size with ${held} connections held`);
      }
      assert.ok(WRITER_CACHE_KIB >= 8192, 'a batch of 500 stats windows (≈ 3.5 MiB) fits');
    } finally {
      client.close();
    }
  });

  test('VACUUM, which SQLite refuses inside a transaction, still runs (release keys wipe freed pages with it)', async () => {
    const { client } = await openDatabase(`file:${path.join(dir, 'vacuum.db')}`);
    try {
      await client.execute('CREATE TABLE v (x TEXT)');
      await client.execute("INSERT INTO v VALUES ('secret')");
      await client.execute('DELETE FROM v');
      await client.execute('VACUUM');
      assert.equal(Number((await client.execute('PRAGMA freelist_count')).rows[0][0]), 0, 'no free pages left after VACUUM');
    } finally {
      client.close();
    }
  });

  test('FLOTILLA_DB_SYNCHRONOUS=full keeps FULL on every writing connection', async () => {
    const { db, client } = await openDatabase(`file:${path.join(dir, 'full.db')}`, { synchronous: 'full' });
    try {
      const seen = spyOnCommits(client);
      for (let held = 0; held < 3; held++) {
        const release = await holdConnections(client, held);
        await db.insert(devices).values({ id: `dev_full${held}`, status: 'approved', labels: {}, facts: {}, credentialHash: 'sha256$x' });
        await db.transaction(async (tx) => {
          await tx.update(devices).set({ labels: { n: String(held) } });
        });
        release();
      }
      assert.deepEqual(new Set(seen), new Set([FULL]), `synchronous at each commit: ${seen.join(', ')}`);
    } finally {
      client.close();
    }
  });
});
