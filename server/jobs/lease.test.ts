import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@libsql/client';
import { type Db, openDatabase } from '../db/client.ts';
import { createLogger } from '../logger.ts';
import { Leader } from './leader.ts';
import { Lease } from './lease.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('scheduler lease on one libsql file shared by two connections', () => {
  let dir: string;
  const conns: Array<{ db: Db; client: Client }> = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-lease-'));
    const url = `file:${path.join(dir, 'db.sqlite')}`;
    conns.push(await openDatabase(url), await openDatabase(url));
  });
  after(async () => {
    for (const c of conns) c.client.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('one holder at a time; renew keeps it; another takes over only after expiry; release frees it', async () => {
    const a = new Lease(conns[0].db);
    const b = new Lease(conns[1].db);
    const t0 = new Date('2030-01-01T00:00:00Z');
    const at = (ms: number) => new Date(t0.getTime() + ms);
    assert.equal(await a.acquire('sched', 'A', 1000, t0), true);
    assert.equal(await b.acquire('sched', 'B', 1000, at(10)), false, 'B must not take a live lease');
    assert.equal(await a.acquire('sched', 'A', 1000, at(20)), true, 'the holder may take it again');
    assert.equal(await a.renew('sched', 'A', 1000, at(900)), true);
    assert.equal(await b.acquire('sched', 'B', 1000, at(1500)), false, 'renewed until 1900');
    assert.equal(await b.acquire('sched', 'B', 1000, at(2000)), true, 'expired: B takes over');
    assert.equal(await a.renew('sched', 'A', 1000, at(2100)), false, 'A learns it lost the lease');
    assert.equal((await a.state('sched'))?.holder, 'B');
    await a.release('sched', 'A');
    assert.equal((await a.state('sched'))?.holder, 'B', 'releasing a lease one does not hold changes nothing');
    await b.release('sched', 'B');
    assert.equal(await a.acquire('sched', 'A', 1000, at(2200)), true, 'released: free at once');
  });

  test('racing acquisitions from two connections: exactly one wins each round', async () => {
    for (let round = 0; round < 20; round++) {
      const name = `race-${round}`;
      const results = await Promise.all([new Lease(conns[0].db).acquire(name, 'A', 5000), new Lease(conns[1].db).acquire(name, 'B', 5000)]);
      assert.equal(results.filter(Boolean).length, 1, `round ${round}: ${results}`);
    }
  });

  test('two leaders: one leads; when it dies without releasing, the other takes over after the TTL', async () => {
    const logger = createLogger('silent');
    const events: string[] = [];
    const make = (i: number, holder: string) =>
      new Leader({ lease: new Lease(conns[i].db), name: 'leaders', holder, ttlMs: 300, logger, onGained: () => void events.push(`${holder}+`), onLost: () => void events.push(`${holder}-`) });
    const l1 = make(0, 'one');
    const l2 = make(1, 'two');
    l1.start();
    await sleep(150);
    l2.start();
    await sleep(400);
    assert.equal(l1.isLeader, true);
    assert.equal(l2.isLeader, false);
    // "Crash": stop renewing without releasing (what a kill -9 leaves behind).
    (l1 as unknown as { stopped: boolean }).stopped = true;
    clearTimeout((l1 as unknown as { timer: NodeJS.Timeout }).timer);
    // The expiry of l1's last renewal (which, on a loaded machine, may have been late).
    const held = await new Lease(conns[0].db).state('leaders');
    assert.equal(held?.holder, 'one');
    const crashedAt = Date.now();
    while (!l2.isLeader && Date.now() - crashedAt < 3000) await sleep(20);
    assert.equal(l2.isLeader, true, 'the second replica took over');
    assert.ok(Date.now() >= Date.parse(held!.expiresAt), 'not before the lease had expired');
    await l2.stop();
    assert.deepEqual(events, ['one+', 'two+', 'two-']);
    assert.equal(await new Lease(conns[0].db).state('leaders'), null, 'a clean stop releases the lease');
  });
});
