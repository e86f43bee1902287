import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SketchMismatchError } from './errors.ts';
import { cloneLatencyHistogram, createLatencyHistogram, LATENCY_BOUNDS_MS, LATENCY_BUCKETS, latencyQuantile, latencySummary, mergeJoinedLatencies, mergeLatencyHistograms, mergeLatencyInto, recordLatency, type LatencyHistogram } from './latency-histogram.ts';
import { gaussian, mulberry32 } from './random.ts';

function exactQuantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

describe('LatencyHistogram', () => {
  it('uses 10 log-spaced buckets per decade from ~0.05 ms to ~63 s, with decades exactly on bounds', () => {
    assert.equal(LATENCY_BOUNDS_MS.length, 62);
    assert.equal(LATENCY_BUCKETS, 63);
    assert.ok(Math.abs(LATENCY_BOUNDS_MS[0] - 0.05) < 0.001);
    assert.ok(LATENCY_BOUNDS_MS[61] > 60_000);
    for (const d of [0.1, 1, 10, 100, 1000, 10_000]) assert.ok(LATENCY_BOUNDS_MS.includes(d), `${d} ms is a bound`);
    for (let i = 1; i < LATENCY_BOUNDS_MS.length; i++) assert.ok(Math.abs(LATENCY_BOUNDS_MS[i] / LATENCY_BOUNDS_MS[i - 1] - 10 ** 0.1) < 1e-4);
  });

  it('ignores negative and non-finite durations', () => {
    const h = createLatencyHistogram();
    assert.equal(recordLatency(h, -1), false);
    assert.equal(recordLatency(h, NaN), false);
    assert.equal(recordLatency(h, 0), true);
    assert.equal(h.count, 1);
    assert.equal(h.counts[0], 1);
  });

  it('estimates p50/p95/p99 of lognormal latencies within 5 % (worst case one bucket, 26 %)', () => {
    const g = gaussian(mulberry32(3));
    const xs = Float64Array.from({ length: 50_000 }, () => Math.exp(1.5 + 0.8 * g())); // median ≈ 4.5 ms
    const h = createLatencyHistogram();
    xs.forEach((x) => recordLatency(h, x));
    const sorted = xs.slice().sort();
    for (const q of [0.5, 0.95, 0.99]) {
      const est = latencyQuantile(h, q)!;
      const exact = exactQuantile(sorted, q);
      const rel = Math.abs(est - exact) / exact;
      console.log(`latency q${q}: estimate ${est.toFixed(3)} ms, exact ${exact.toFixed(3)} ms, error ${(rel * 100).toFixed(2)} %`);
      assert.ok(rel < 0.05, `q${q} off by ${rel}`);
    }
    assert.equal(latencyQuantile(h, 0), sorted[0]);
    assert.equal(latencyQuantile(h, 1), sorted[sorted.length - 1]);
    assert.equal(latencyQuantile(createLatencyHistogram(), 0.5), null);
    const sum = latencySummary(h);
    assert.ok(Math.abs(sum.meanMs! - xs.reduce((a, b) => a + b, 0) / xs.length) < 1e-9 * sum.meanMs!);
  });

  it('merging N partial histograms equals the histogram of the concatenated data', () => {
    const rng = mulberry32(8);
    const xs = Array.from({ length: 9_999 }, () => (rng() < 0.001 ? 100_000 : rng() < 0.001 ? 0.01 : 10 ** (rng() * 4 - 1)));
    const whole = createLatencyHistogram();
    xs.forEach((x) => recordLatency(whole, x));
    const parts: LatencyHistogram[] = Array.from({ length: 6 }, () => createLatencyHistogram());
    xs.forEach((x, i) => recordLatency(parts[i % 6], x));
    const merged = parts.reduce((a, b) => mergeLatencyHistograms(a, b));
    assert.deepEqual(merged.counts, whole.counts);
    assert.equal(merged.count, whole.count);
    assert.equal(merged.minMs, whole.minMs);
    assert.equal(merged.maxMs, whole.maxMs);
    assert.ok(Math.abs(merged.sumMs - whole.sumMs) <= 1e-9 * whole.sumMs);
    assert.equal(latencyQuantile(merged, 0.95), latencyQuantile(whole, 0.95));
  });

  it('refuses to merge histograms with another layout', () => {
    const other = { ...createLatencyHistogram(), counts: [1, 2, 3] };
    assert.throws(() => mergeLatencyHistograms(createLatencyHistogram(), other), SketchMismatchError);
    assert.throws(() => mergeLatencyInto(createLatencyHistogram(), other), SketchMismatchError);
  });

  it('merging in place gives what mergeLatencyHistograms gives, bit for bit, and leaves the input alone', () => {
    const rng = mulberry32(9);
    for (let trial = 0; trial < 50; trial++) {
      // Empty ones too (null min/max).
      const parts = Array.from({ length: 1 + Math.floor(rng() * 8) }, () => {
        const h = createLatencyHistogram();
        const n = rng() < 0.2 ? 0 : Math.floor(rng() * 300);
        for (let i = 0; i < n; i++) recordLatency(h, 10 ** (rng() * 5 - 1.5));
        return h;
      });
      const copies = parts.map((p) => structuredClone(p));
      const expected = parts.reduce((a, b) => mergeLatencyHistograms(a, b));
      const acc = cloneLatencyHistogram(parts[0]);
      for (const p of parts.slice(1)) mergeLatencyInto(acc, p);
      assert.equal(JSON.stringify(acc), JSON.stringify(expected), `trial ${trial}`);
      assert.deepStrictEqual(parts, copies, 'inputs unchanged');
      // Joined as SQLite's group_concat joins the stored texts: the same merge, from an empty histogram.
      const joined = mergeJoinedLatencies(parts.map((p) => JSON.stringify(p)).join(','));
      assert.equal(JSON.stringify(joined), JSON.stringify(parts.reduce(mergeLatencyHistograms, createLatencyHistogram())), `trial ${trial}, joined`);
    }
  });
});
