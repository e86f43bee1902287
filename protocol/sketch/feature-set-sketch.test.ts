import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SketchMismatchError } from './errors.ts';
import { addRow, CONFIDENCE_EDGES, createFeatureSetSketch, mergeAllFeatureSetSketches, mergeFeatureSetSketches, sketchLayout, type FeatureSetSketch, type RowValue, type SketchLayout } from './feature-set-sketch.ts';
import { gaussian, mulberry32 } from './random.ts';
import { computeReferenceProfile, quantileEdges } from './reference-profile.ts';

const layout: SketchLayout = {
  features: {
    temp: { kind: 'numeric', edges: [-2, -1, 0, 1, 2] },
    load: { kind: 'numeric', edges: [0, 10, 100] },
    site: { kind: 'categorical', categories: ['a', 'b', 'c'] },
  },
  outputs: { task: 'classification', numClasses: 3 },
};

function relClose(a: number, b: number, what: string) {
  assert.ok(Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b), 1e-300), `${what}: ${a} vs ${b}`);
}

/** Exact equality for everything except moments and bin sums (1e-9 relative). */
function assertSameFeatureSet(merged: FeatureSetSketch, whole: FeatureSetSketch) {
  assert.deepEqual(merged.quality, whole.quality);
  const pairs: Array<[string, unknown, unknown]> = [
    ...Object.keys(whole.features).map((k) => [k, merged.features[k], whole.features[k]] as [string, unknown, unknown]),
    ...Object.keys(whole.outputs).map((k) => [k, (merged.outputs as Record<string, unknown>)[k], (whole.outputs as Record<string, unknown>)[k]] as [string, unknown, unknown]),
  ];
  assert.deepEqual(Object.keys(merged.features).sort(), Object.keys(whole.features).sort());
  for (const [name, m, w] of pairs) {
    const a = m as Record<string, unknown>;
    const b = w as Record<string, unknown>;
    if (b.kind === 'numeric') {
      const { mean: ma, m2: m2a, sums: sa, ...restA } = a;
      const { mean: mb, m2: m2b, sums: sb, ...restB } = b;
      assert.deepEqual(restA, restB, name);
      relClose(ma as number, mb as number, `${name}.mean`);
      relClose(m2a as number, m2b as number, `${name}.m2`);
      (sa as number[]).forEach((x, i) => relClose(x, (sb as number[])[i], `${name}.sums[${i}]`));
    } else assert.deepEqual(a, b, name);
  }
}

function makeRows(n: number, seed: number) {
  const rng = mulberry32(seed);
  const g = gaussian(rng);
  return Array.from({ length: n }, () => {
    const row: Record<string, RowValue> = { temp: rng() < 0.02 ? null : g(), load: rng() < 0.01 ? 'high' : Math.exp(3 + g()), site: ['a', 'b', 'c', 'd'][Math.floor(rng() * 4)] };
    if (rng() < 0.01) delete row.site;
    if (rng() < 0.01) row.extra = 1;
    const cls = Math.floor(rng() * 3);
    return { row, out: { predictedClass: cls, confidence: rng() < 0.05 ? 1 : 0.34 + 0.66 * rng() } };
  });
}

describe('FeatureSetSketch', () => {
  it('records quality counters: missing, extra, wrong type, NaN and out-of-range', () => {
    const s = createFeatureSetSketch(layout);
    addRow(s, { temp: 0.5, load: 5, site: 'a' }, { predictedClass: 1, confidence: 0.9 });
    addRow(s, { temp: NaN, load: 'x', extra1: 1, extra2: 2 }); // site missing, load wrong type
    addRow(s, { temp: 9, load: -1, site: { no: 1 } as unknown as string }); // both out of range, site wrong type
    assert.deepEqual(s.quality, { rows: 3, schemaViolations: { missing: 1, extra: 2, wrongType: 2 }, outOfRange: 2, nans: 1 });
    assert.equal(s.features.temp.kind === 'numeric' && s.features.temp.nans, 1);
    assert.equal(s.features.load.kind === 'numeric' && s.features.load.nulls, 1);
    assert.equal(s.features.site.nulls, 2);
    assert.deepEqual(s.outputs.predictedClass!.counts, [0, 1, 0]);
    assert.deepEqual(s.outputs.confidence!.edges, CONFIDENCE_EDGES);
  });

  it('merging N partial sketches equals the sketch of the concatenated data (exact counts/bins, moments within 1e-9)', () => {
    const data = makeRows(12_000, 42);
    const whole = createFeatureSetSketch(layout);
    data.forEach(({ row, out }) => addRow(whole, row, out));
    const parts = Array.from({ length: 9 }, () => createFeatureSetSketch(layout));
    const rng = mulberry32(7);
    data.forEach(({ row, out }) => addRow(parts[Math.floor(rng() * 9)], row, out)); // devices see interleaved traffic
    assertSameFeatureSet(mergeAllFeatureSetSketches(parts), whole);
    // JSON round trip (the wire) changes nothing.
    assertSameFeatureSet(mergeAllFeatureSetSketches(parts.map((p) => JSON.parse(JSON.stringify(p)) as FeatureSetSketch)), whole);
  });

  it('merging a list in place gives exactly the pairwise left-to-right merge, leaves the inputs untouched, and refuses a mismatch anywhere in the list', () => {
    const data = makeRows(3_000, 5);
    const parts = Array.from({ length: 7 }, () => createFeatureSetSketch(layout));
    data.forEach(({ row, out }, i) => addRow(parts[i % 7], row, out));
    const before = JSON.stringify(parts);
    assert.deepEqual(mergeAllFeatureSetSketches(parts), parts.reduce((a, b) => mergeFeatureSetSketches(a, b)));
    assert.equal(JSON.stringify(parts), before, 'inputs not mutated');
    const otherEdges = createFeatureSetSketch({ ...layout, features: { ...layout.features, load: { kind: 'numeric', edges: [0, 10, 1000] } } });
    assert.throws(() => mergeAllFeatureSetSketches([...parts, otherEdges]), (e: unknown) => e instanceof SketchMismatchError && e.code === 'edges_mismatch');
    const fewer = createFeatureSetSketch({ features: { temp: layout.features.temp }, outputs: layout.outputs });
    assert.throws(() => mergeAllFeatureSetSketches([...parts, fewer]), (e: unknown) => e instanceof SketchMismatchError && e.code === 'features_mismatch');
  });

  it('refuses to merge sketches with other features, edges or outputs', () => {
    const a = createFeatureSetSketch(layout);
    const otherEdges = createFeatureSetSketch({ ...layout, features: { ...layout.features, load: { kind: 'numeric', edges: [0, 10, 1000] } } });
    assert.throws(() => mergeFeatureSetSketches(a, otherEdges), (e: unknown) => e instanceof SketchMismatchError && e.code === 'edges_mismatch');
    const fewer = createFeatureSetSketch({ features: { temp: layout.features.temp }, outputs: layout.outputs });
    assert.throws(() => mergeFeatureSetSketches(a, fewer), (e: unknown) => e instanceof SketchMismatchError && e.code === 'features_mismatch');
    const regression = createFeatureSetSketch({ features: layout.features, outputs: { task: 'regression', edges: [0, 1] } });
    assert.throws(() => mergeFeatureSetSketches(a, regression), (e: unknown) => e instanceof SketchMismatchError && e.code === 'outputs_mismatch');
  });

  it('sketchLayout gives back the layout it was built on', () => {
    assert.deepEqual(sketchLayout(createFeatureSetSketch(layout)), layout);
  });
});

describe('computeReferenceProfile', () => {
  it('derives strictly ascending quantile edges with the maximum inside the top bin', () => {
    const g = gaussian(mulberry32(1));
    const xs = Array.from({ length: 5000 }, () => g());
    const e = quantileEdges(xs, 20);
    assert.equal(e.length, 21);
    for (let i = 1; i < e.length; i++) assert.ok(e[i] > e[i - 1]);
    assert.equal(e[0], Math.min(...xs));
    assert.ok(e[20] > Math.max(...xs) && e[20] - Math.max(...xs) < 1e-12);
  });

  it('deduplicates edges of discrete features and handles constant and empty features', () => {
    assert.deepEqual(quantileEdges([0, 0, 0, 0, 1, 1, 2, 2, 2, 3], 20).slice(0, 3), [0, 1, 2]);
    assert.deepEqual(quantileEdges([5, 5, 5], 20), [5, 5.000000000000001]);
    assert.deepEqual(quantileEdges([NaN, Infinity], 20), [0, 1]);
  });

  it('computes the reference sketch with the same code, so reference rows fill no under/overflow bins', () => {
    const rng = mulberry32(2);
    const g = gaussian(rng);
    const rows = Array.from({ length: 2000 }, () => ({
      x: g(),
      k: Math.floor(rng() * 3), // integer-coded categorical
      flag: rng() < 0.5 ? 'on' : 'off',
      constant: 7,
      predictedClass: Math.floor(rng() * 2),
      confidence: 0.5 + rng() / 2,
    }));
    const { layout: l, sketch } = computeReferenceProfile(
      rows,
      {
        features: [
          { name: 'x', kind: 'numeric' },
          { name: 'k', kind: 'numeric' },
          { name: 'flag', kind: 'categorical' },
          { name: 'constant', kind: 'numeric' },
        ],
        outputs: { task: 'classification', numClasses: 2 },
      },
      { bins: 20 },
    );
    const x = sketch.features.x;
    assert.ok(x.kind === 'numeric');
    assert.equal(x.bins[0], 0);
    assert.equal(x.bins[x.bins.length - 1], 0);
    assert.equal(x.count, 2000);
    for (const c of x.bins.slice(1, -1)) assert.ok(Math.abs(c - 100) <= 1, `quantile bins hold ~5 % each (${c})`);
    // {0, 1, 2} is discrete: a bin per value (and per gap), not quantile edges that merge 1 and 2.
    assert.deepEqual(l.features.k, { kind: 'numeric', edges: [0, Number.MIN_VALUE, 1, 1.0000000000000002, 2, 2.0000000000000004] });
    const k = sketch.features.k;
    assert.ok(k.kind === 'numeric');
    assert.deepEqual([k.bins[0], k.bins[2], k.bins[4], k.bins[6]], [0, 0, 0, 0], 'under/overflow and gap bins are empty in the reference');
    assert.deepEqual(l.features.constant, { kind: 'numeric', edges: [7, 7.000000000000001] });
    assert.equal(l.features.flag.kind === 'categorical' && l.features.flag.categories.length, 2);
    assert.equal(sketch.quality.schemaViolations.extra, 0, 'output columns are not counted as extra features');
    assert.equal(sketch.outputs.predictedClass!.count, 2000);
    assert.equal(sketch.outputs.confidence!.count, 2000);
    // A device sketch on the same layout merges with the reference sketch.
    const device = createFeatureSetSketch(l);
    addRow(device, { x: 0, k: 1, flag: 'on', constant: 7 });
    assert.equal(mergeFeatureSetSketches(sketch, device).quality.rows, 2001);
  });
});
