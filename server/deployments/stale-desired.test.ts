import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { staleAction } from './stale-desired.ts';

describe('stale desired state', () => {
  const t0 = Date.parse('2030-01-01T00:00:00Z');
  const at = (s: number) => new Date(t0 + s * 1000).toISOString();
  const row = (o: Partial<Parameters<typeof staleAction>[0]>) => ({ deviceId: 'd', bundleId: 'b2', mismatchSince: null, republishedAt: null, activeBundleId: 'b1', ...o });
  const after = 60_000;

  test('a mismatch starts the clock, turns stale after the threshold, is re-published at most once per threshold', () => {
    assert.deepEqual(staleAction(row({}), t0, after), { kind: 'start' });
    assert.deepEqual(staleAction(row({ mismatchSince: at(0) }), t0 + 59_000, after), { kind: 'none' });
    assert.deepEqual(staleAction(row({ mismatchSince: at(0) }), t0 + 60_000, after), { kind: 'republish' });
    assert.deepEqual(staleAction(row({ mismatchSince: at(0), republishedAt: at(60) }), t0 + 90_000, after), { kind: 'none' });
    assert.deepEqual(staleAction(row({ mismatchSince: at(0), republishedAt: at(60) }), t0 + 120_000, after), { kind: 'republish' });
    assert.deepEqual(staleAction(row({ activeBundleId: null }), t0, after), { kind: 'start' }, 'nothing active yet is a mismatch too');
  });

  test('agreement clears the marks (or does nothing when there are none)', () => {
    assert.deepEqual(staleAction(row({ activeBundleId: 'b2', mismatchSince: at(0), republishedAt: at(60) }), t0, after), { kind: 'clear' });
    assert.deepEqual(staleAction(row({ activeBundleId: 'b2' }), t0, after), { kind: 'none' });
  });
});
