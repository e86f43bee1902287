import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConnectGate } from './connect-gate.ts';

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
});
