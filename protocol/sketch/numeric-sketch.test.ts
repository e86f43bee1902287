import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { binIndex, nextUp } from './bin-edges.ts';
import { SketchError, SketchMismatchError } from './errors.ts';
import { addNumeric, createNumericSketch, mergeNumericSketches, numericStd, numericVariance, type NumericSketch } from './numeric-sketch.ts';
import { gaussian, mulberry32 } from './random.ts';

/** |a − b| ≤ tol · max(|a|, |b|, tiny): relative closeness that tolerates exact zeros. */
function assertRelClose(actual: number, expected: number, tol: number, what: string): void {
  const scale = Math.max(Math.abs(actual), Math.abs(expected), 1e-300);
  assert.ok(Math.abs(actual - expected) <= tol * scale, `${what}: ${actual} vs ${expected} (rel ${Math.abs(actual - expected) / scale})`);
}

function assertSameSketch(merged: NumericSketch, whole: NumericSketch): void {
  // Exact for every count and bin.
  assert.deepEqual(merged.bins, whole.bins);
  for (const k of ['count', 'nulls', 'nans', 'outOfRange', 'min', 'max'] as const) assert.equal(merged[k], whole[k], k);
  assert.deepEqual(merged.edges, whole.edges);
  // Moments and per-bin sums within 1e-9 relative.
  assertRelClose(merged.mean, whole.mean, 1e-9, 'mean');
  assertRelClose(merged.m2, whole.m2, 1e-9, 'm2');
  merged.sums.forEach((s, i) => assertRelClose(s, whole.sums[i], 1e-9, `sums[${i}]`));
}

describe('bin interval convention', () => {
  it('puts values below the first edge in underflow, edge values in the bin they start, and >= last edge in overflow', () => {
    const e = [0, 1, 2];
    assert.equal(binIndex(e, -0.001), 0);
    assert.equal(binIndex(e, 0), 1);
    assert.equal(binIndex(e, 0.999), 1);
    assert.equal(binIndex(e, 1), 2);
    assert.equal(binIndex(e, 2), 3);
    assert.equal(binIndex(e, 1e9), 3);
  });

  it('nextUp returns the next double', () => {
    assert.equal(nextUp(1), 1 + Number.EPSILON);
    assert.ok(nextUp(-1) > -1 && nextUp(-1) - -1 < 1e-15);
    assert.equal(nextUp(0), Number.MIN_VALUE);
  });
});

describe('NumericSketch', () => {
  it('counts nulls, NaN/±Infinity and out-of-range values apart from the finite values', () => {
    const s = createNumericSketch([0, 10]);
    for (const x of [5, null, undefined, NaN, Infinity, -Infinity, -1, 10, 11]) addNumeric(s, x);
    assert.equal(s.count, 4); // 5, -1, 10, 11
    assert.equal(s.nulls, 2);
    assert.equal(s.nans, 3);
    assert.equal(s.outOfRange, 2); // -1 and 11; 10 is the last edge, inside [0, 10]
    assert.deepEqual(s.bins, [1, 1, 2]); // -1 | 5 | 10, 11
    assert.deepEqual(s.sums, [-1, 5, 21]);
    assert.equal(s.min, -1);
    assert.equal(s.max, 11);
    assertRelClose(s.mean, 25 / 4, 1e-15, 'mean');
    const mean = 25 / 4;
    const m2 = [5, -1, 10, 11].reduce((a, x) => a + (x - mean) ** 2, 0);
    assertRelClose(s.m2, m2, 1e-12, 'm2');
    assertRelClose(numericVariance(s), m2 / 4, 1e-12, 'variance');
    assertRelClose(numericStd(s), Math.sqrt(m2 / 4), 1e-12, 'std');
  });

  it('refuses invalid edges', () => {
    assert.throws(() => createNumericSketch([]), SketchError);
    assert.throws(() => createNumericSketch([1, 1]), (e: unknown) => e instanceof SketchError && e.code === 'invalid_edges');
    assert.throws(() => createNumericSketch([0, NaN]), SketchError);
  });

  it('merging N partial sketches equals the sketch of the concatenated data (exact counts/bins, moments within 1e-9)', () => {
    const rng = mulberry32(1234);
    const g = gaussian(rng);
    const edges = Array.from({ length: 21 }, (_, i) => 1e6 - 3 + (6 * i) / 20);
    // A large offset makes naive sum-of-squares merging fail; Chan's formula must not.
    const data: Array<number | null> = Array.from({ length: 20_000 }, () => {
      const u = rng();
      return u < 0.01 ? null : u < 0.015 ? NaN : 1e6 + g() * (u < 0.5 ? 1 : 2);
    });
    const whole = createNumericSketch(edges);
    data.forEach((x) => addNumeric(whole, x));

    for (const parts of [2, 7, 50]) {
      // Uneven random cuts, including empty parts.
      const cuts = [0, ...Array.from({ length: parts - 1 }, () => Math.floor(rng() * data.length)).sort((a, b) => a - b), data.length];
      const partial = cuts.slice(1).map((end, i) => {
        const s = createNumericSketch(edges);
        for (let j = cuts[i]; j < end; j++) addNumeric(s, data[j]);
        return s;
      });
      // Merge as a balanced tree, as the server does when merging per-device then per-window.
      let level = partial;
      while (level.length > 1) {
        const next: NumericSketch[] = [];
        for (let i = 0; i < level.length; i += 2) next.push(i + 1 < level.length ? mergeNumericSketches(level[i], level[i + 1]) : level[i]);
        level = next;
      }
      assertSameSketch(level[0], whole);
    }
  });

  it('merging with an empty sketch is the identity', () => {
    const a = createNumericSketch([0, 1]);
    [0.2, 0.7, 3].forEach((x) => addNumeric(a, x));
    assert.deepEqual(mergeNumericSketches(a, createNumericSketch([0, 1])), a);
    assert.deepEqual(mergeNumericSketches(createNumericSketch([0, 1]), a), a);
  });

  it('refuses to merge sketches on different edges with a typed error', () => {
    const a = createNumericSketch([0, 1, 2]);
    const b = createNumericSketch([0, 1, 3]);
    assert.throws(
      () => mergeNumericSketches(a, b),
      (e: unknown) => e instanceof SketchMismatchError && e.code === 'edges_mismatch',
    );
    assert.throws(() => mergeNumericSketches(a, createNumericSketch([0, 1])), SketchMismatchError);
  });
});
