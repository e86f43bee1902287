import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Backoff } from './backoff.ts';

describe('Backoff (full jitter)', () => {
  test('every delay lies in [0, window] and the window doubles from minMs up to maxMs', () => {
    const windows = [100, 200, 400, 800, 1000, 1000];
    const top = new Backoff({ minMs: 100, maxMs: 1000, random: () => 1 });
    assert.deepEqual(windows.map(() => top.next()), windows);
    const bottom = new Backoff({ minMs: 100, maxMs: 1000, random: () => 0 });
    assert.deepEqual(windows.map(() => bottom.next()), [0, 0, 0, 0, 0, 0]);
    const mid = new Backoff({ minMs: 100, maxMs: 1000, random: () => 0.5 });
    assert.deepEqual(windows.map(() => mid.next()), windows.map((w) => w / 2));
  });

  test('the first delay is already random: a fleet dropped at once is spread over the first window', () => {
    const firsts = Array.from({ length: 2000 }, () => new Backoff({ minMs: 1000, maxMs: 60_000 }).next());
    assert.ok(Math.min(...firsts) >= 0 && Math.max(...firsts) <= 1000);
    // Uniform over [0, 1000]: every tenth of the window gets some devices, none gets most of them.
    const deciles = Array.from({ length: 10 }, (_, i) => firsts.filter((d) => d >= i * 100 && d < (i + 1) * 100).length);
    for (const n of deciles) assert.ok(n > 50 && n < 400, `decile counts ${deciles.join(',')}`);
  });

  test('reset after a success starts again from minMs', () => {
    const b = new Backoff({ minMs: 100, maxMs: 10_000, random: () => 1 });
    b.next();
    b.next();
    b.next();
    assert.equal(b.attempts, 3);
    b.reset();
    assert.equal(b.attempts, 0);
    assert.equal(b.next(), 100);
  });
});
