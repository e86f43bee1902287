import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { Outbox, type OutboxChannel, type OutboxPublisher } from './outbox.ts';

const logger = pino({ level: 'silent' });

/** A broker stand-in: records what it acknowledged; can be offline or refuse (a lost PUBACK). */
class FakeBroker implements OutboxPublisher {
  connected = true;
  refuse = 0;
  hold: Promise<void> | null = null;
  readonly got: Array<{ channel: OutboxChannel; seq: number }> = [];
  async publish(channel: OutboxChannel, message: unknown): Promise<boolean> {
    if (this.hold) await this.hold;
    if (!this.connected) return false;
    if (this.refuse > 0) {
      this.refuse--;
      return false;
    }
    this.got.push({ channel, seq: (message as { seq: number }).seq });
    return true;
  }
}

async function until(what: string, fn: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const msg = (seq: number, pad = 0) => ({ seq, pad: 'x'.repeat(pad) });

describe('Outbox', () => {
  let root: string;
  let n = 0;
  const freshDir = () => path.join(root, `box-${++n}`);
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'flotilla-outbox-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('stored before it is sent; sent in order while connected; deleted once acknowledged', async () => {
    const dir = freshDir();
    const box = new Outbox({ dir, maxBytes: 1 << 20, logger });
    await box.init();
    const broker = new FakeBroker();
    broker.connected = false;
    box.attach(broker);
    for (let i = 0; i < 5; i++) await box.append(i % 2 ? 'telemetry' : 'stats', msg(i));
    assert.equal((await readdir(dir)).length, 5, 'on disk while offline');
    assert.equal(broker.got.length, 0);
    broker.connected = true;
    box.kick(); // what a reconnect does
    await until('all sent', () => box.pending === 0);
    assert.deepEqual(broker.got.map((g) => g.seq), [0, 1, 2, 3, 4]);
    assert.deepEqual(broker.got.map((g) => g.channel), ['stats', 'telemetry', 'stats', 'telemetry', 'stats']);
    assert.deepEqual(await readdir(dir), []);
    assert.equal(box.sent, 5);
    await box.stop();
  });

  test('a failed publish keeps the file and is retried (a lost PUBACK resends the same message)', async () => {
    const box = new Outbox({ dir: freshDir(), maxBytes: 1 << 20, logger, retryMs: 10 });
    await box.init();
    const broker = new FakeBroker();
    broker.refuse = 2;
    box.attach(broker);
    await box.append('stats', msg(7));
    await box.append('stats', msg(8));
    await until('both sent', () => box.pending === 0);
    assert.deepEqual(broker.got.map((g) => g.seq), [7, 8], 'order kept across retries');
    await box.stop();
  });

  test('bounded: past maxBytes the oldest go first and are counted; the one being sent is never dropped', async () => {
    const dir = freshDir();
    const box = new Outbox({ dir, maxBytes: 1000, logger });
    await box.init();
    const broker = new FakeBroker();
    broker.connected = false;
    box.attach(broker);
    for (let i = 0; i < 10; i++) await box.append(i < 3 ? 'telemetry' : 'stats', msg(i, 280)); // ~300 bytes each: 3 fit
    assert.equal(box.pending, 3);
    assert.ok(box.pendingBytes <= 1000);
    assert.deepEqual(box.dropped, { telemetry: 3, stats: 4 });
    broker.connected = true;
    box.kick();
    await until('sent', () => box.pending === 0);
    assert.deepEqual(broker.got.map((g) => g.seq), [7, 8, 9], 'the newest survive, in order');

    // While a message waits for its PUBACK, making room skips it.
    let release!: () => void;
    broker.hold = new Promise((r) => (release = r));
    await box.append('stats', msg(20, 280));
    await until('in flight', () => box.pending === 1);
    for (let i = 21; i < 25; i++) await box.append('stats', msg(i, 280));
    broker.hold = null;
    release();
    await until('drained', () => box.pending === 0);
    assert.equal(broker.got.filter((g) => g.seq >= 20)[0].seq, 20, 'the in-flight message was not dropped');
    await box.stop();
  });

  test('survives a restart: a new outbox on the same directory sends what is left, in order, then continues after it', async () => {
    const dir = freshDir();
    const first = new Outbox({ dir, maxBytes: 1 << 20, logger });
    await first.init();
    for (let i = 0; i < 4; i++) await first.append('stats', msg(i));
    await first.stop(); // never connected: like a kill while offline
    await writeFile(path.join(dir, '.000000000009.stats.json.abcd.tmp'), '{"seq":'); // an interrupted atomic write

    const second = new Outbox({ dir, maxBytes: 1 << 20, logger });
    await second.init();
    assert.equal(second.pending, 4);
    assert.equal(await second.lastSeq('stats'), 3);
    await second.append('stats', msg(4));
    const broker = new FakeBroker();
    second.attach(broker);
    await until('sent', () => second.pending === 0);
    assert.deepEqual(broker.got.map((g) => g.seq), [0, 1, 2, 3, 4]);
    assert.deepEqual(await readdir(dir), [], 'the temp file was cleaned up');
    await second.stop();
  });

  test('a torn or corrupt file is skipped, removed and counted; the rest still goes', async () => {
    const dir = freshDir();
    const box = new Outbox({ dir, maxBytes: 1 << 20, logger });
    await box.init();
    await box.append('stats', msg(1));
    await box.append('stats', msg(2));
    await box.append('telemetry', msg(3));
    const files = (await readdir(dir)).sort();
    await writeFile(path.join(dir, files[1]), '{"seq": 2, "sketch": {"feat'); // truncated
    await writeFile(path.join(dir, 'junk.txt'), 'not ours');
    await box.stop();

    const again = new Outbox({ dir, maxBytes: 1 << 20, logger });
    await again.init();
    assert.equal(again.corrupt, 1, 'a stranger file counts');
    const broker = new FakeBroker();
    again.attach(broker);
    await until('sent', () => again.pending === 0);
    assert.deepEqual(broker.got.map((g) => g.seq), [1, 3]);
    assert.equal(again.corrupt, 2);
    assert.deepEqual(await readdir(dir), []);
    await again.stop();
  });

  test('paced: a backlog goes out as a burst, then no faster than the rate (the server drops past its own)', async () => {
    const box = new Outbox({ dir: freshDir(), maxBytes: 1 << 20, logger, pace: { ratePerS: 20, burst: 3 } });
    await box.init();
    const broker = new FakeBroker();
    broker.connected = false;
    box.attach(broker);
    for (let i = 0; i < 5; i++) await box.append('telemetry', msg(i));
    broker.connected = true;
    const started = Date.now();
    box.kick();
    await until('all sent', () => broker.got.length === 5);
    // 3 at once, then 2 more at 20/s: at least 2 × 50 ms, however slow the machine.
    assert.ok(Date.now() - started >= 95, `sent 5 in ${Date.now() - started} ms`);
    assert.deepEqual(broker.got.map((g) => g.seq), [0, 1, 2, 3, 4]);
    await box.stop();
  });
});
