import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nextBatchLimit } from './batch-limit.ts';

const base = 500;
const targetMs = 500;

describe('ingest batch limit', () => {
  it('grows by doubling while full batches commit under the target, up to 8 × the batch size', () => {
    let limit = base;
    const seen = [];
    for (let i = 0; i < 6; i++) seen.push((limit = nextBatchLimit({ limit, size: limit, ms: 100, base, targetMs })));
    assert.deepEqual(seen, [1000, 2000, 4000, 4000, 4000, 4000]);
  });

  it('does not grow on a partial batch (no backlog) or a slow one', () => {
    assert.equal(nextBatchLimit({ limit: 1000, size: 300, ms: 10, base, targetMs }), 1000);
    assert.equal(nextBatchLimit({ limit: 1000, size: 1000, ms: 700, base, targetMs }), 1000);
  });

  it('halves after a transaction over twice the target, never below the batch size', () => {
    assert.equal(nextBatchLimit({ limit: 4000, size: 4000, ms: 1500, base, targetMs }), 2000);
    assert.equal(nextBatchLimit({ limit: 500, size: 500, ms: 5000, base, targetMs }), 500);
  });
});
