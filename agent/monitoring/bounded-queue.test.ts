import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BoundedQueue } from './bounded-queue.ts';

describe('BoundedQueue', () => {
  test('first in, first out across the wrap-around of the ring', () => {
    const q = new BoundedQueue<number>(3, Infinity);
    const out: number[] = [];
    for (let i = 0; i < 10; i++) {
      assert.equal(q.push(i, 1), true);
      if (q.size === 2) out.push(q.shift()!);
    }
    while (q.size) out.push(q.shift()!);
    assert.deepEqual(out, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(q.shift(), undefined);
  });

  test('refuses past its count or its weight, and takes again once drained', () => {
    const byCount = new BoundedQueue<string>(2, Infinity);
    assert.ok(byCount.push('a', 0) && byCount.push('b', 0));
    assert.equal(byCount.push('c', 0), false, 'full by count');
    assert.equal(byCount.size, 2);
    byCount.shift();
    assert.equal(byCount.push('c', 0), true);

    const byWeight = new BoundedQueue<string>(100, 10);
    assert.ok(byWeight.push('a', 6));
    assert.equal(byWeight.push('b', 5), false, '6 + 5 > 10');
    assert.ok(byWeight.push('c', 4));
    assert.equal(byWeight.weight, 10);
    byWeight.shift();
    assert.equal(byWeight.weight, 4);
    assert.ok(byWeight.push('d', 6));
  });
});
