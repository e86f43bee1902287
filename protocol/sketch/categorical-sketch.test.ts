import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addCategorical, categoricalCounts, createCategoricalSketch, mergeCategoricalSketches, type CategoricalSketch } from './categorical-sketch.ts';
import { SketchError, SketchMismatchError } from './errors.ts';
import { mulberry32 } from './random.ts';
import { addTopK, createTopKSketch, mergeTopKSketches, topKItems, topKMaxError } from './top-k-sketch.ts';

describe('CategoricalSketch', () => {
  it('counts known categories, unseen values as other, and nulls; numbers match by string form', () => {
    const s = createCategoricalSketch(['a', 'b', '2']);
    for (const v of ['a', 'b', 'a', 'zzz', null, undefined, 2, true]) addCategorical(s, v);
    assert.deepEqual(s.counts, [2, 1, 1]);
    assert.equal(s.other, 2); // 'zzz', true
    assert.equal(s.nulls, 2);
    assert.equal(s.count, 6);
    assert.deepEqual(categoricalCounts(s), [2, 1, 1, 2]);
  });

  it('refuses duplicate categories', () => {
    assert.throws(() => createCategoricalSketch(['a', 'a']), SketchError);
  });

  it('merging N partial sketches equals the sketch of the concatenated data (exactly)', () => {
    const rng = mulberry32(99);
    const cats = ['x', 'y', 'z', 'w'];
    const data = Array.from({ length: 10_000 }, () => {
      const u = rng();
      return u < 0.02 ? null : u < 0.05 ? 'unseen-' + Math.floor(u * 1000) : cats[Math.floor(rng() * cats.length)];
    });
    const whole = createCategoricalSketch(cats);
    data.forEach((v) => addCategorical(whole, v));
    const parts: CategoricalSketch[] = [];
    for (let i = 0; i < data.length; i += 1733) {
      const s = createCategoricalSketch(cats);
      data.slice(i, i + 1733).forEach((v) => addCategorical(s, v));
      parts.push(s);
    }
    const merged = parts.reduce((a, b) => mergeCategoricalSketches(a, b));
    assert.deepEqual(merged, whole);
  });

  it('refuses to merge sketches over different categories with a typed error', () => {
    assert.throws(
      () => mergeCategoricalSketches(createCategoricalSketch(['a', 'b']), createCategoricalSketch(['b', 'a'])),
      (e: unknown) => e instanceof SketchMismatchError && e.code === 'categories_mismatch',
    );
  });
});

describe('TopKSketch (approximate)', () => {
  it('keeps every value more frequent than the error bound, with true counts inside [lower, upper]', () => {
    const rng = mulberry32(5);
    const truth = new Map<string, number>();
    const parts = [createTopKSketch(10), createTopKSketch(10), createTopKSketch(10)];
    for (let i = 0; i < 30_000; i++) {
      // Zipf-like: a few heavy values and a long tail.
      const v = 'v' + Math.floor(1 / (rng() + 0.01));
      truth.set(v, (truth.get(v) ?? 0) + 1);
      addTopK(parts[i % 3], v);
    }
    const merged = mergeTopKSketches(mergeTopKSketches(parts[0], parts[1]), parts[2]);
    assert.equal(merged.count, 30_000);
    const err = topKMaxError(merged);
    const items = topKItems(merged);
    assert.ok(items.length <= 10);
    for (const { value, lower, upper } of items) {
      const t = truth.get(value)!;
      assert.ok(lower <= t && t <= upper, `${value}: ${t} not in [${lower}, ${upper}]`);
    }
    for (const [v, c] of truth) if (c > err) assert.ok(items.some((i) => i.value === v), `${v} (${c} > ${err}) must be tracked`);
    assert.equal(items[0].value, 'v1'); // the heaviest value
  });

  it('refuses to merge sketches with different k', () => {
    assert.throws(() => mergeTopKSketches(createTopKSketch(3), createTopKSketch(4)), SketchMismatchError);
  });
});
