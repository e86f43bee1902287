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

describe('Backoff with a cap (the MQTT session while nothing listens)', () => {
  /** A seeded generator (mulberry32): the same delays on every run. */
  const seeded = (seed: number) => () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };

  test('a capped window stops growing at the cap; uncapped calls grow on from there to maxMs', () => {
    const b = new Backoff({ minMs: 1000, maxMs: 15_000, random: () => 1 });
    // Twelve refused connects (a ~20 s restart): windows 1, 2, 4 s, then 4 s for as long as it lasts.
    assert.deepEqual(Array.from({ length: 12 }, () => b.next(4000)), [1000, 2000, 4000, 4000, 4000, 4000, 4000, 4000, 4000, 4000, 4000, 4000]);
    // The broker listens and answers "busy": the window grows on from the cap, not at maxMs at once.
    assert.deepEqual([b.next(), b.next(), b.next(), b.next()], [4000, 8000, 15_000, 15_000]);
    b.reset();
    assert.equal(b.next(4000), 1000);
  });

  test('the fleet stays spread: seeded delays under a cap are uniform over [0, cap], none beyond it', () => {
    const random = seeded(42);
    // 2,000 devices each ten refused connects deep (the window is at the cap): their next delays.
    const delays = Array.from({ length: 2000 }, () => {
      const b = new Backoff({ minMs: 1000, maxMs: 15_000, random });
      for (let i = 0; i < 10; i++) b.next(4000);
      return b.next(4000);
    });
    assert.ok(Math.max(...delays) <= 4000);
    const quarters = [0, 1, 2, 3].map((q) => delays.filter((d) => d >= q * 1000 && d < (q + 1) * 1000).length);
    for (const n of quarters) assert.ok(n > 400 && n < 600, `per-second counts ${quarters.join(',')}`);
    // Without the cap the same devices would wait up to maxMs (what a restart cost before).
    const uncapped = new Backoff({ minMs: 1000, maxMs: 15_000, random: () => 1 });
    for (let i = 0; i < 10; i++) uncapped.next();
    assert.equal(uncapped.next(), 15_000);
  });

  test('a cap above maxMs changes nothing', () => {
    const a = new Backoff({ minMs: 100, maxMs: 1000, random: () => 1 });
    const b = new Backoff({ minMs: 100, maxMs: 1000, random: () => 1 });
    const n = 8;
    assert.deepEqual(Array.from({ length: n }, () => a.next(5000)), Array.from({ length: n }, () => b.next()));
  });
});
