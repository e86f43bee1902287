import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addRow, createFeatureSetSketch, type FeatureSetSketch, type SketchLayout } from '../sketch/feature-set-sketch.ts';
import { addNumeric, createNumericSketch, MAX_SKETCH_MAGNITUDE } from '../sketch/numeric-sketch.ts';
import { validateStatsMessage } from './stats.ts';

const layout: SketchLayout = {
  features: { a: { kind: 'numeric', edges: [0, 10, 20] }, b: { kind: 'numeric', edges: [0, 1] }, site: { kind: 'categorical', categories: ['x'] } },
  outputs: { task: 'none' },
};

function message(sketch: FeatureSetSketch) {
  return {
    v: 1,
    deviceId: 'dev_abcdef12',
    bundleId: 'bnd_1',
    model: { name: 'm', version: 1 },
    windowStart: '2025-06-01T11:00:00Z',
    windowEnd: '2025-06-01T11:05:00Z',
    seq: 1,
    // What goes over the wire: JSON turns Infinity into null.
    sketch: JSON.parse(JSON.stringify(sketch)) as FeatureSetSketch,
  };
}

describe('extreme values never cost the window', () => {
  for (const wild of [1.4e154, 1e200, -1e300, Number.MAX_VALUE]) {
    it(`a sketch counts ${wild} as unusable (nans) and keeps finite moments; the window validates`, () => {
      const s = createFeatureSetSketch(layout);
      for (let i = 0; i < 50; i++) addRow(s, { a: i % 20, b: 0.5, site: 'x' });
      addRow(s, { a: wild, b: 0.5, site: 'x' });
      const a = s.features.a;
      assert.ok(a.kind === 'numeric');
      assert.deepEqual([a.count, a.nans], [50, 1]);
      assert.ok(Number.isFinite(a.m2) && Number.isFinite(a.mean) && a.sums.every(Number.isFinite));
      assert.equal(s.quality.nans, 1, 'counted as a data-quality event');
      const r = validateStatsMessage(message(s), { reference: layout, deviceId: 'dev_abcdef12', now: new Date('2025-06-01T12:00:00Z') });
      assert.ok(r.ok, JSON.stringify(r));
      assert.deepEqual(r.salvaged, []);
    });
  }

  it('the bound: 1e100 is kept, the next double beyond it is not', () => {
    const s = createNumericSketch([0, 1]);
    addNumeric(s, MAX_SKETCH_MAGNITUDE);
    addNumeric(s, -MAX_SKETCH_MAGNITUDE * (1 + 2 ** -52));
    assert.deepEqual([s.count, s.nans], [1, 1]);
  });

  it('a window from an older agent whose moments overflowed is kept: that feature counts its values as nans, the others are intact', () => {
    const s = createFeatureSetSketch(layout);
    for (let i = 0; i < 30; i++) addRow(s, { a: i % 20, b: 0.25, site: 'x' });
    addRow(s, { a: 25, b: 0.75, site: 'x' }); // overflow bin, out of range
    // What an agent without the bound sent had that value been 1e200: Welford's m2 overflowed.
    const a = s.features.a;
    assert.ok(a.kind === 'numeric');
    a.sums[3] = 1e200;
    a.max = 1e200;
    a.m2 = Infinity;
    const before = structuredClone(s);
    const r = validateStatsMessage(message(s), { reference: layout, deviceId: 'dev_abcdef12', now: new Date('2025-06-01T12:00:00Z') });
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(r.salvaged, ['a']);
    const got = r.message.sketch;
    const ga = got.features.a;
    assert.ok(ga.kind === 'numeric');
    assert.deepEqual([ga.count, ga.nans, ga.outOfRange, ga.min, ga.max, ga.m2], [0, 31, 0, null, null, 0]);
    assert.deepEqual(got.features.b, before.features.b, 'the other numeric feature is untouched');
    assert.deepEqual(got.features.site, before.features.site);
    assert.equal(got.quality.nans, before.quality.nans + 31);
    assert.equal(got.quality.outOfRange, 0);
  });

  it('anything else wrong is still refused with its own reason', () => {
    const s = createFeatureSetSketch(layout);
    addRow(s, { a: 1, b: 0.5, site: 'x' });
    const m = message(s);
    (m.sketch.features.a as { bins: number[] }).bins[1] = -1;
    const r = validateStatsMessage(m, { reference: layout });
    assert.ok(!r.ok && r.reason === 'negative_count');
  });
});
