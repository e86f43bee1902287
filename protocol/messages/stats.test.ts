import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addRow, createFeatureSetSketch, sketchLayout, type FeatureSetSketch, type SketchLayout } from '../sketch/feature-set-sketch.ts';
import { checkSketchAgainstReference, STATS_REJECT_REASONS, validateStatsMessage, type StatsRejectReason } from './stats.ts';

const layout: SketchLayout = {
  features: {
    temp: { kind: 'numeric', edges: [0, 10, 20] },
    site: { kind: 'categorical', categories: ['a', 'b'] },
  },
  outputs: { task: 'classification', numClasses: 2 },
};
const NOW = new Date('2025-06-01T12:00:00Z');

function goodMessage() {
  const sketch = createFeatureSetSketch(layout);
  addRow(sketch, { temp: 5, site: 'a' }, { predictedClass: 1, confidence: 0.8 });
  addRow(sketch, { temp: 25, site: 'z' }, { predictedClass: 0, confidence: 0.6 });
  addRow(sketch, { temp: null, site: null });
  return {
    v: 1,
    deviceId: 'dev_abcdef12',
    bundleId: 'bnd_1',
    model: { name: 'tabular-demo', version: 3 },
    windowStart: '2025-06-01T11:00:00Z',
    windowEnd: '2025-06-01T11:05:00Z',
    seq: 17,
    sketch: JSON.parse(JSON.stringify(sketch)) as FeatureSetSketch,
  };
}
type Msg = ReturnType<typeof goodMessage>;
type Num = Extract<FeatureSetSketch['features'][string], { kind: 'numeric' }>;
const temp = (m: Msg) => m.sketch.features.temp as Num;

function expectReason(mutate: (m: Msg) => void, reason: StatsRejectReason, opts: Parameters<typeof validateStatsMessage>[1] = {}) {
  const m = goodMessage();
  mutate(m);
  const r = validateStatsMessage(m, { now: NOW, reference: layout, ...opts });
  assert.equal(r.ok, false, `expected ${reason}, got ok`);
  if (!r.ok) assert.equal(r.reason, reason, r.message);
}

describe('stats message validation', () => {
  it('accepts a well-formed message built by the sketch code', () => {
    const r = validateStatsMessage(goodMessage(), { now: NOW, reference: layout, deviceId: 'dev_abcdef12' });
    assert.ok(r.ok, r.ok ? '' : `${r.reason}: ${r.message}`);
  });

  const cases: Array<[string, (m: Msg) => void, StatsRejectReason, Parameters<typeof validateStatsMessage>[1]?]> = [
    ['another schema version', (m) => (m.v = 2), 'schema_version'],
    ['a missing version', (m) => delete (m as Partial<Msg>).v, 'schema_version'],
    ['a negative count', (m) => (temp(m).nulls = -1), 'negative_count'],
    ['a negative bin count', (m) => ((temp(m).bins[1] = -1), (temp(m).bins[2] += 2)), 'negative_count'],
    ['a non-integer count', (m) => (m.sketch.quality.rows = 2.5), 'non_integer_count'],
    ['a non-integer category count', (m) => (m.sketch.features.site.count = 1.5), 'non_integer_count'],
    ['bins that do not match edges + 1', (m) => temp(m).bins.push(0), 'bins_mismatch'],
    ['sums that do not match bins', (m) => temp(m).sums.pop(), 'bins_mismatch'],
    ['category counts that do not match categories', (m) => (m.sketch.features.site as { counts: number[] }).counts.push(0), 'bins_mismatch'],
    ['unsorted edges', (m) => (temp(m).edges = [0, 20, 10]), 'invalid_edges'],
    ['bins that do not add up to count', (m) => temp(m).bins[0]++, 'count_mismatch'],
    ['a feature that does not account for every row', (m) => (m.sketch.quality.rows = 4), 'count_mismatch'],
    ['min greater than max', (m) => ((temp(m).min = 30), (temp(m).max = 5)), 'min_gt_max'],
    ['a mean outside [min, max]', (m) => (temp(m).mean = 100), 'invalid_moments'],
    ['a negative m2', (m) => (temp(m).m2 = -1), 'invalid_moments'],
    ['a bin sum outside its bin', (m) => (temp(m).sums[1] = 50), 'invalid_moments'],
    ['a window that ends before it starts', (m) => (m.windowEnd = '2025-06-01T10:00:00Z'), 'window_order'],
    ['a window ending in the future', (m) => ((m.windowStart = '2025-06-01T12:30:00Z'), (m.windowEnd = '2025-06-01T12:35:00Z')), 'future_window'],
    ['a device id that differs from the topic', () => {}, 'device_mismatch', { deviceId: 'dev_zzzzzzzz' }],
    ['a malformed device id', (m) => (m.deviceId = 'evil/+'), 'malformed'],
    ['a missing seq', (m) => delete (m as Partial<Msg>).seq, 'malformed'],
    ['a feature the reference lacks', (m) => (m.sketch.features.extra = m.sketch.features.site), 'unknown_feature'],
    ['a feature missing', (m) => delete m.sketch.features.site, 'missing_feature'],
    ['other bin edges', (m) => ((temp(m).edges = [0, 10, 30]), (temp(m).sums = [0, 5, 25, 0]), (temp(m).bins = [0, 1, 1, 0])), 'edges_mismatch'],
    ['a numeric feature sent as categorical', (m) => (m.sketch.features.temp = { kind: 'categorical', categories: [], counts: [], other: 2, nulls: 1, count: 2 } as never), 'kind_mismatch'],
    ['other categories', (m) => ((m.sketch.features.site as { categories: string[] }).categories = ['b', 'a']), 'categories_mismatch'],
    ['missing outputs', (m) => (m.sketch.outputs = {}), 'outputs_mismatch'],
  ];
  for (const [what, mutate, reason, opts] of cases) it(`rejects ${what} with '${reason}'`, () => expectReason(mutate, reason, opts));

  it('rejects non-objects as malformed', () => {
    for (const raw of [null, 'x', 42, []]) {
      const r = validateStatsMessage(raw);
      assert.ok(!r.ok && r.reason === 'malformed');
    }
  });

  it('accepts old windows (offline buffer) and checks against a reference sketch as well as a layout', () => {
    const m = goodMessage();
    m.windowStart = '2024-01-01T00:00:00Z';
    m.windowEnd = '2024-01-01T00:05:00Z';
    assert.ok(validateStatsMessage(m, { now: NOW }).ok);
    const ref = createFeatureSetSketch(layout);
    assert.equal(checkSketchAgainstReference(m.sketch, ref), null);
    assert.deepEqual(sketchLayout(ref), layout);
  });

  it('every reason code used above is declared', () => {
    for (const [, , reason] of cases) assert.ok(STATS_REJECT_REASONS.includes(reason));
  });
});
