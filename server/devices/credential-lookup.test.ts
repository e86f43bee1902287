import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eq } from 'drizzle-orm';
import { type Db, openDatabase } from '../db/client.ts';
import { devices } from '../db/schema.ts';
import { createEnrollToken, enrollDevice } from '../enroll/enroll-service.ts';
import { CredentialLookup } from './credential-lookup.ts';

const FACTS = { arch: 'arm64', cpus: 4, memoryBytes: 1e9, os: 'linux', agentVersion: '0.1.0' };

describe('CredentialLookup', () => {
  let dir: string;
  let db: Db;
  let close: () => void;
  const ids: string[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-credential-lookup-'));
    const opened = await openDatabase(`file:${path.join(dir, 'db.sqlite')}`);
    db = opened.db;
    close = () => opened.client.close();
    const token = await createEnrollToken(db, { labels: {}, autoApprove: true, actor: 'test' });
    for (let i = 0; i < 520; i++) ids.push((await enrollDevice(db, { token: token.token, facts: FACTS })).deviceId);
  });
  after(async () => {
    close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a burst of lookups is answered by one read per 500 ids, each with its own row (unknown ids: undefined)', async () => {
    const lookup = new CredentialLookup(db);
    const stored = new Map((await db.select({ id: devices.id, status: devices.status, credentialHash: devices.credentialHash }).from(devices)).map((r) => [r.id, r]));
    // All asked in one turn of the event loop, as CONNECTs read from many sockets at once; one id twice.
    const asked = [...ids, ids[7], 'dev_unknown'];
    const rows = await Promise.all(asked.map((id) => lookup.get(id)));
    assert.equal(lookup.reads, 2); // 521 distinct ids
    for (const [i, id] of asked.entries()) {
      const want = stored.get(id);
      assert.deepEqual(rows[i], want && { status: want.status, credentialHash: want.credentialHash });
    }
    assert.equal(rows.at(-1), undefined);
  });

  test('nothing is cached: a later lookup sees a revocation', async () => {
    const lookup = new CredentialLookup(db);
    assert.equal((await lookup.get(ids[0]))?.status, 'approved');
    await db.update(devices).set({ status: 'revoked' }).where(eq(devices.id, ids[0]));
    assert.equal((await lookup.get(ids[0]))?.status, 'revoked');
    assert.equal(lookup.reads, 2);
  });

  test('lookups made while a read is in flight form the next batch', async () => {
    const lookup = new CredentialLookup(db);
    const first = lookup.get(ids[1]);
    await new Promise((r) => setImmediate(r)); // the first read has started
    const rest = Promise.all(ids.slice(2, 300).map((id) => lookup.get(id)));
    await first;
    assert.equal((await rest).filter(Boolean).length, 298);
    assert.equal(lookup.reads, 2);
  });

  test('a failed read rejects the lookups of its batch (the CONNECT is refused, not left waiting)', async () => {
    const lookup = new CredentialLookup(db);
    close(); // the database is gone: the read fails
    close = () => {};
    await assert.rejects(Promise.all([lookup.get(ids[3]), lookup.get(ids[4])]));
    await assert.rejects(lookup.get(ids[5])); // the next batch is read (and fails) too
    assert.equal(lookup.reads, 2);
  });
});
