import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import type { CommandResponse } from '../protocol/messages/command.ts';
import { CommandHandler } from './commands.ts';
import { SeenCommandIds } from './seen-command-ids.ts';
import { AgentState } from './state-store.ts';
import { reactivatable } from './reconciler.ts';

const inSeconds = (s: number) => new Date(Date.now() + s * 1000).toISOString();
const cmd = (o: Record<string, unknown>) => Buffer.from(JSON.stringify({ v: 1, args: {}, expiresAt: inSeconds(30), ...o }));

describe('agent commands', () => {
  let dir: string;
  before(async () => (dir = await mkdtemp(path.join(tmpdir(), 'flotilla-cmd-'))));
  after(async () => rm(dir, { recursive: true, force: true }));

  function handler(dataDir = dir) {
    const replies: CommandResponse[] = [];
    let reports = 0;
    const h = new CommandHandler({
      logger: pino({ level: 'silent' }),
      dataDir,
      reply: async (m) => replies.push(m),
      ping: () => ({ pong: true }),
      report: () => ({ reported: ++reports }),
    });
    return { h, replies, reports: () => reports };
  }

  test('ping and report run unsigned; rollback and other commands are refused as SIGNED_ONLY', async () => {
    const { h, replies, reports } = handler();
    h.handle(cmd({ id: 'p1', command: 'ping' }));
    h.handle(cmd({ id: 'r1', command: 'report' }));
    h.handle(cmd({ id: 'rb1', command: 'rollback' }));
    h.handle(cmd({ id: 'sc1', command: 'set-config' }));
    await h.stop();
    assert.deepEqual(replies.map((r) => [r.id, r.status]), [['p1', 'ok'], ['r1', 'ok'], ['rb1', 'error'], ['sc1', 'error']]);
    assert.equal(reports(), 1);
    for (const r of replies.slice(2)) assert.equal(r.status === 'error' && r.error.code, 'SIGNED_ONLY');
  });

  test('an id is accepted once, also after a restart (persisted); expired, expiry-less and far-future commands are dropped', async () => {
    const sub = await mkdtemp(path.join(dir, 'replay-'));
    const first = handler(sub);
    first.h.handle(cmd({ id: 'once', command: 'ping' }));
    first.h.handle(cmd({ id: 'once', command: 'ping' }));
    await first.h.stop();
    assert.equal(first.replies.length, 1);
    assert.equal(first.h.droppedBy.replayed, 1);
    const second = handler(sub); // a restarted agent
    second.h.handle(cmd({ id: 'once', command: 'ping' }));
    second.h.handle(cmd({ id: 'old', command: 'ping', expiresAt: inSeconds(-1) }));
    second.h.handle(Buffer.from(JSON.stringify({ v: 1, id: 'noexp', command: 'ping' })));
    second.h.handle(cmd({ id: 'far', command: 'ping', expiresAt: inSeconds(3600) }));
    await second.h.stop();
    assert.deepEqual(second.h.droppedBy, { replayed: 1, expired: 1, malformed: 2 });
    assert.deepEqual(second.replies.map((r) => [r.id, r.status === 'error' && r.error.code]), [['noexp', 'INVALID_COMMAND'], ['far', 'EXPIRY_TOO_FAR']]);
  });

  test('seen ids: remembered until their expiry, bounded (full refuses instead of forgetting)', () => {
    const seen = new SeenCommandIds(2);
    assert.equal(seen.admit('a', 1000, 0), 'fresh');
    assert.equal(seen.admit('a', 1000, 10), 'replay');
    assert.equal(seen.admit('b', 2000, 10), 'fresh');
    assert.equal(seen.admit('c', 2000, 10), 'full');
    assert.equal(seen.admit('c', 2000, 1000), 'fresh', 'a expired and made room');
    assert.equal(seen.admit('a', 3000, 1000), 'full');
    assert.equal(seen.size, 2);
  });

  test('reactivatable: only the newest activated manifest that no longer serves', () => {
    const s = AgentState.parse({ v: 1, highWaterCounter: 5, handled: [
      { digest: 'old', counter: 4, outcome: 'active' },
      { digest: 'newest', counter: 5, outcome: 'active' },
      { digest: 'bad', counter: 6, outcome: 'PROBATION_FAILED' },
    ] });
    assert.equal(reactivatable(s, 'newest'), true);
    assert.equal(reactivatable(s, 'old'), false, 'an older counter stays a rollback');
    assert.equal(reactivatable(s, 'bad'), false, 'a failed manifest stays refused');
    assert.equal(reactivatable(s, 'unknown'), false);
  });
});
