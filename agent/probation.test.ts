import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { InferenceOutcome } from './model-runtime.ts';
import { watchProbation } from './probation.ts';

function emitter() {
  const listeners = new Set<(o: InferenceOutcome) => void>();
  return {
    onOutcome: (l: (o: InferenceOutcome) => void) => (listeners.add(l), () => listeners.delete(l)),
    emit: (o: InferenceOutcome) => listeners.forEach((l) => l(o)),
    get size() {
      return listeners.size;
    },
  };
}
const opts = { durationMs: 10_000, requests: 10, minRequests: 4, maxErrorRate: 0.25 };

describe('probation', () => {
  test('passes after N requests under the error rate; other bundles do not count', async () => {
    const e = emitter();
    const v = watchProbation(e, 7, opts);
    for (let i = 0; i < 20; i++) e.emit({ counter: 6, ok: false });
    for (let i = 0; i < 10; i++) e.emit({ counter: 7, ok: i !== 3 });
    const r = await v;
    assert.equal(r.ok, true);
    assert.equal(r.requests, 10);
    assert.equal(r.errors, 1);
    assert.equal(e.size, 0, 'unsubscribed');
  });

  test('fails as soon as the error rate is exceeded after the minimum', async () => {
    const e = emitter();
    const v = watchProbation(e, 7, opts);
    e.emit({ counter: 7, ok: false, code: 'INFERENCE_FAILED' });
    e.emit({ counter: 7, ok: false });
    e.emit({ counter: 7, ok: true });
    e.emit({ counter: 7, ok: true });
    const r = await v;
    assert.equal(r.ok, false);
    assert.equal(r.requests, 4);
    assert.match(r.message, /2 of 4/);
  });

  test('passes when the window ends without traffic; an abort is neither pass nor fail', async () => {
    const e = emitter();
    assert.equal((await watchProbation(e, 1, { ...opts, durationMs: 20 })).ok, true);
    const ctl = new AbortController();
    const v = watchProbation(e, 1, opts, ctl.signal);
    ctl.abort();
    const r = await v;
    assert.equal(r.interrupted, true);
    assert.equal(e.size, 0);
  });
});
