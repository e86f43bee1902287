// Seeded simulation of the drift monitor's decision: false-positive rate and power per feature at
// the window sizes the monitor evaluates, through the real path — rows sketched per device on the
// reference layout, device sketches merged, the merged window evaluated with the default config
// against one fixed 20,000-row reference. The measured table is printed and quoted in DRIFT.md.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addRow, createFeatureSetSketch, mergeAllFeatureSetSketches, type FeatureSetSketch } from '../sketch/feature-set-sketch.ts';
import { gaussian, mulberry32 } from '../sketch/random.ts';
import { computeReferenceProfile, type ReferenceProfile, type ReferenceRow, type ReferenceSpec } from '../sketch/reference-profile.ts';
import { evaluateDrift } from './evaluate.ts';

const NUMERIC = ['normal', 'lognormal', 'uniform', 'poisson', 'binary'] as const;
type Numeric = (typeof NUMERIC)[number];
const spec: ReferenceSpec = { features: [...NUMERIC.map((name) => ({ name, kind: 'numeric' as const })), { name: 'color', kind: 'categorical' }] };

/** Feature shapes a monitor meets: symmetric, skewed, bounded, counts, a flag, a category. */
function world(seed: number) {
  const rng = mulberry32(seed);
  const g = gaussian(rng);
  const poisson = () => {
    // Knuth's method, λ = 3.
    let k = 0;
    let p = 1;
    const l = Math.exp(-3);
    for (;;) {
      p *= rng();
      if (p <= l) return k;
      k++;
    }
  };
  const sd: Record<Numeric, number> = { normal: 1, lognormal: Math.sqrt((Math.exp(0.25) - 1) * Math.exp(0.25)), uniform: 1 / Math.sqrt(3), poisson: Math.sqrt(3), binary: 0.5 };
  return (n: number, shift?: { feature: Numeric; sd: number }): ReferenceRow[] =>
    Array.from({ length: n }, () => {
      const row: ReferenceRow = { normal: g(), lognormal: Math.exp(0.5 * g()), uniform: 2 * rng() - 1, poisson: poisson(), binary: rng() < 0.5 ? 1 : 0 };
      const u = rng();
      row.color = u < 0.5 ? 'red' : u < 0.8 ? 'green' : 'blue';
      if (shift) (row[shift.feature] as number) += shift.sd * sd[shift.feature];
      return row;
    });
}

/** A window as the server sees it: `devices` agents' sketches of the rows, merged. */
function windowOf(profile: ReferenceProfile, rows: ReferenceRow[], devices = 4): FeatureSetSketch {
  const parts = Array.from({ length: devices }, () => createFeatureSetSketch(profile.layout));
  rows.forEach((r, i) => addRow(parts[i % devices], r));
  return mergeAllFeatureSetSketches(parts);
}

const SIZES = [100, 300, 1000, 10_000] as const;
/** Windows per size: enough for a binomial standard error of ~1.5 % on a 5 % rate. */
const TRIALS: Record<(typeof SIZES)[number], number> = { 100: 200, 300: 200, 1000: 200, 10_000: 60 };

describe('drift decision by window size (simulation, fixed 20,000-row reference, default config)', () => {
  const draw = world(20_260_101);
  const profile = computeReferenceProfile(draw(20_000), spec);
  const features = [...NUMERIC, 'color'];

  it('false-positive rate ≤ 5 % per feature at n = 100, 300, 1,000 and 10,000; dataset verdict never fires', () => {
    const table: Record<string, Record<string, string>> = {};
    for (const n of SIZES) {
      const alarms: Record<string, number> = Object.fromEntries(features.map((f) => [f, 0]));
      let dataset = 0;
      for (let t = 0; t < TRIALS[n]; t++) {
        const report = evaluateDrift(profile.sketch, windowOf(profile, draw(n)));
        for (const f of report.features) if (f.drifted) alarms[f.feature]++;
        if (report.dataset.drifted) dataset++;
      }
      table[`n=${n}`] = Object.fromEntries([...features.map((f) => [f, `${((alarms[f] / TRIALS[n]) * 100).toFixed(1)} %`]), ['dataset', `${((dataset / TRIALS[n]) * 100).toFixed(1)} %`]]);
      for (const f of features) assert.ok(alarms[f] / TRIALS[n] <= 0.05, `${f} at n = ${n}: ${alarms[f]} of ${TRIALS[n]} unshifted windows flagged`);
      assert.equal(dataset, 0, `dataset verdict fired ${dataset} times at n = ${n}`);
    }
    console.log('FPR per feature (no shift):');
    console.table(table);
  });

  it('power ≥ 95 % for a 0.5σ mean shift at n = 1,000 on every numeric feature (and reported at other n)', () => {
    const table: Record<string, Record<string, string>> = {};
    for (const n of SIZES) {
      const row: Record<string, string> = {};
      for (const feature of NUMERIC) {
        const trials = n === 10_000 ? 20 : 60;
        let hits = 0;
        for (let t = 0; t < trials; t++) {
          const report = evaluateDrift(profile.sketch, windowOf(profile, draw(n, { feature, sd: 0.5 })));
          if (report.features.find((f) => f.feature === feature)!.drifted) hits++;
        }
        row[feature] = `${((hits / trials) * 100).toFixed(0)} %`;
        if (n >= 1000) assert.ok(hits / trials >= 0.95, `${feature} at n = ${n}: detected in ${hits} of ${trials}`);
      }
      table[`n=${n}`] = row;
    }
    console.log('Power per feature (0.5σ mean shift):');
    console.table(table);
  });
});
