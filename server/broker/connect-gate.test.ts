import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConnectGate } from './connect-gate.ts';
import { LoopLag } from './loop-lag.ts';

describe('ConnectGate', () => {
  test('at most `max` checks at once; a slot frees on leave()', () => {
    const gate = new ConnectGate(2);
    assert.equal(gate.tryEnter(), true);
    assert.equal(gate.tryEnter(), true);
    assert.equal(gate.tryEnter(), false);
    gate.leave();
    assert.equal(gate.tryEnter(), true);
    assert.equal(gate.pending, 2);
  });

  test('with a LoopLag: every connect is shed for holdMs after a loop turn ran over maxLagMs, then let in again', () => {
    let now = 0;
    const lag = new LoopLag({ maxLagMs: 500, holdMs: 1000, now: () => now });
    const gate = new ConnectGate(100, lag);
    lag.sample(499); // late, but within the limit
    assert.equal(gate.tryEnter(), true);
    gate.leave();
    now = 10;
    lag.sample(800); // a turn of 800 ms: overloaded until 1010
    assert.equal(gate.pending, 0);
    assert.equal(gate.tryEnter(), false);
    now = 1009;
    assert.equal(gate.tryEnter(), false);
    now = 1011;
    assert.equal(gate.tryEnter(), true);
    assert.equal(lag.worstMs, 800);
  });

  test('LoopLag measures a real blocked event loop', async () => {
    const lag = new LoopLag({ maxLagMs: 100, holdMs: 60_000, everyMs: 10 });
    lag.start();
    try {
      // Block the loop for 300 ms; the next timer tick comes ≥ 290 ms late.
      const until = performance.now() + 300;
      while (performance.now() < until);
      await new Promise((r) => setTimeout(r, 50));
      assert.ok(lag.worstMs >= 200, `worst lag ${lag.worstMs} ms`);
      assert.equal(lag.overloaded, true);
    } finally {
      lag.stop();
    }
  });
});
