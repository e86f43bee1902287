import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { STATE_FILE, StateStore } from './state-store.ts';

describe('state store: what is written, and when', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-state-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const onDisk = async (d: string) => JSON.parse(await readFile(path.join(d, STATE_FILE), 'utf8'));

  test('update() is on disk when it resolves; note() waits for the next update() and is written with it', async () => {
    const d = await mkdtemp(path.join(dir, 'a-'));
    const store = new StateStore(d);
    await store.load();
    await store.update((s) => void (s.highWaterCounter = 3));
    assert.equal(store.writes, 1);
    store.note((s) => void s.transitions.push({ state: 'downloading', at: new Date().toISOString(), counter: 4 }));
    assert.equal(store.writes, 1, 'a note is not a write');
    // What a restart (kill -9 now) reads: the update, not the note.
    const restarted = new StateStore(d);
    assert.equal((await restarted.load()).highWaterCounter, 3);
    assert.equal((await restarted.load()).transitions.length, 0);
    await store.update((s) => void (s.probation = { counter: 4, dir: '4-0000000000000000' }));
    assert.equal(store.writes, 2);
    const saved = await onDisk(d);
    assert.deepEqual(saved.transitions.map((t: { state: string }) => t.state), ['downloading']);
    assert.deepEqual(saved.probation, { counter: 4, dir: '4-0000000000000000' });
  });

  test('updates issued together share one write, and each resolves once its change is on disk', async () => {
    const d = await mkdtemp(path.join(dir, 'b-'));
    const store = new StateStore(d);
    await store.load();
    const all = [1, 2, 3, 4, 5].map((n) => store.update((s) => void (s.highWaterCounter = n)));
    await all[0];
    assert.equal((await onDisk(d)).highWaterCounter, 5, 'the first to resolve already sees the last change on disk');
    await Promise.all(all);
    assert.equal(store.writes, 1);
    // One more while none is under way: a write of its own.
    await store.update((s) => void (s.highWaterCounter = 6));
    assert.equal(store.writes, 2);
    assert.equal((await new StateStore(d).load()).highWaterCounter, 6);
  });
});
