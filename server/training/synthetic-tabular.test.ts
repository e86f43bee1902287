import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FEATURES, FEATURE_STATS, TABULAR_LABELS, featureMatrix, labelIndices, makeTabularRows, parseTabularCsv, tabularToCsv } from './synthetic-tabular.ts';

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: number[]) => {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length);
};

describe('synthetic tabular data', () => {
  it('is deterministic for a seed and differs between seeds', () => {
    assert.deepEqual(makeTabularRows({ n: 300, seed: 7 }), makeTabularRows({ n: 300, seed: 7 }));
    assert.notDeepEqual(makeTabularRows({ n: 300, seed: 7 }), makeTabularRows({ n: 300, seed: 8 }));
  });

  it('has all three classes in reasonable balance, both regions, and features on different scales', () => {
    const rows = makeTabularRows({ n: 6000, seed: 1 });
    for (const label of TABULAR_LABELS) {
      const share = rows.filter((r) => r.label === label).length / rows.length;
      assert.ok(share > 0.25 && share < 0.42, `${label}: ${share}`);
    }
    const south = rows.filter((r) => r.region === 'south').length / rows.length;
    assert.ok(south > 0.45 && south < 0.55);
    const stds = FEATURES.map((f) => std(rows.map((r) => r[f])));
    assert.ok(Math.max(...stds) / Math.min(...stds) > 1000, `std spread ${stds.join(', ')}`);
  });

  it('shift moves the shifted feature by the requested number of stds and leaves the rest alone', () => {
    const n = 20_000;
    const base = makeTabularRows({ n, seed: 3 });
    const shifted = makeTabularRows({ n, seed: 3, shift: { f0: 1.5, f4: -2 } });
    for (const [f, k] of [['f0', 1.5], ['f4', -2]] as const) {
      const sd = std(base.map((r) => r[f]));
      const moved = (mean(shifted.map((r) => r[f])) - mean(base.map((r) => r[f]))) / sd;
      // Measured against the sample std: f0's includes the region offset, hence the loose bound.
      assert.ok(Math.abs(moved - k) < 0.1 * Math.abs(k), `${f} moved ${moved} std, wanted ${k}`);
      assert.ok(Math.abs(mean(shifted.map((r) => r[f])) - mean(base.map((r) => r[f])) - k * FEATURE_STATS[f].std) < 1e-3 * FEATURE_STATS[f].std);
    }
    // Same seed, same draws: other features and (sensor-offset mode) labels are unchanged.
    for (let i = 0; i < n; i += 97) {
      assert.equal(shifted[i].f1, base[i].f1);
      assert.equal(shifted[i].label, base[i].label);
    }
    const covariate = makeTabularRows({ n, seed: 3, shift: { f0: 1.5 }, shiftAffectsLabel: true });
    const high = (rows: typeof base) => rows.filter((r) => r.label === 'high').length;
    assert.ok(high(covariate) > high(base) * 1.3, 'a higher f0 makes more rows "high" when the label follows the shift');
  });

  it('round-trips through CSV exactly, with a header row', () => {
    const rows = makeTabularRows({ n: 200, seed: 4 });
    const csv = tabularToCsv(rows);
    assert.equal(csv.split('\n')[0], 'f0,f1,f2,f3,f4,f5,f6,f7,region,label');
    assert.deepEqual(parseTabularCsv(csv), rows);
    assert.deepEqual(featureMatrix(parseTabularCsv(csv)), featureMatrix(rows));
    assert.deepEqual(labelIndices(rows).slice(0, 3), Int32Array.from(rows.slice(0, 3), (r) => TABULAR_LABELS.indexOf(r.label)));
  });

  it('reads CSVs with other column orders and no region; rejects bad values with the line', () => {
    const rows = parseTabularCsv('label,f7,f6,f5,f4,f3,f2,f1,f0,extra\nhigh,1,2,3,4,5,6,7,8,x\n');
    assert.equal(rows[0].f0, 8);
    assert.equal(rows[0].region, undefined);
    assert.throws(() => parseTabularCsv('f0,f1,f2,f3,f4,f5,f6,f7,label\n1,2,3,4,5,6,7,x,low\n'), /line 2: f7/);
    assert.throws(() => parseTabularCsv('f0,f1,f2,f3,f4,f5,f6,f7,label\n1,2,3,4,5,6,7,8,huge\n'), /unknown label/);
    assert.throws(() => parseTabularCsv('f0,label\n1,low\n'), /lacks column "f1"/);
  });
});
