import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SketchMismatchError } from '../sketch/errors.ts';
import { addRow, createFeatureSetSketch, type FeatureSetSketch } from '../sketch/feature-set-sketch.ts';
import { gaussian, mulberry32 } from '../sketch/random.ts';
import { computeReferenceProfile, type ReferenceProfile, type ReferenceRow, type ReferenceSpec } from '../sketch/reference-profile.ts';
import { DriftConfig } from './config.ts';
import { DriftConfigError, evaluateDrift, type DriftReport } from './evaluate.ts';
import { referenceWarnings } from './reference-warnings.ts';

const NUMERIC = ['f0', 'f1', 'f2', 'f3'] as const;
const spec: ReferenceSpec = {
  features: [...NUMERIC.map((name) => ({ name, kind: 'numeric' as const })), { name: 'color', kind: 'categorical' }],
  outputs: { task: 'classification', numClasses: 3 },
};

/**
 * A synthetic world with differently shaped features: f0 ~ N(0, 1), f1 ~ N(100, 15),
 * f2 ~ lognormal(0, 0.5), f3 ~ U(−1, 1), color ∈ {red 50 %, green 30 %, blue 20 %}.
 * `shift` adds `shift.sd` standard deviations to the named numeric feature.
 */
function world(seed: number) {
  const rng = mulberry32(seed);
  const g = gaussian(rng);
  const sds = { f0: 1, f1: 15, f2: Math.sqrt((Math.exp(0.25) - 1) * Math.exp(0.25)), f3: 1 / Math.sqrt(3) };
  return (n: number, opts: { shift?: { feature: (typeof NUMERIC)[number]; sd: number }; colors?: [number, number, number]; classes?: [number, number] } = {}): ReferenceRow[] =>
    Array.from({ length: n }, () => {
      const row: ReferenceRow = { f0: g(), f1: 100 + 15 * g(), f2: Math.exp(0.5 * g()), f3: 2 * rng() - 1 };
      if (opts.shift) (row[opts.shift.feature] as number) += opts.shift.sd * sds[opts.shift.feature];
      const [pr, pg] = opts.colors ?? [0.5, 0.3, 0.2];
      const u = rng();
      row.color = u < pr ? 'red' : u < pr + pg ? 'green' : 'blue';
      const [c0, c1] = opts.classes ?? [0.6, 0.3];
      const v = rng();
      row.predictedClass = v < c0 ? 0 : v < c0 + c1 ? 1 : 2;
      row.confidence = 0.4 + 0.6 * rng();
      return row;
    });
}

/** What an agent does: sketch rows on the reference layout. */
function sketchOf(profile: ReferenceProfile, rows: ReferenceRow[]): FeatureSetSketch {
  const s = createFeatureSetSketch(profile.layout);
  for (const { predictedClass, confidence, ...inputs } of rows) addRow(s, inputs, { predictedClass, confidence: confidence as number });
  return s;
}

const drifted = (r: DriftReport) => r.features.filter((f) => f.drifted).map((f) => f.feature);

describe('evaluateDrift: detection', () => {
  for (const [refRows, method] of [
    [1000, 'ks'],
    [5000, 'wasserstein'],
  ] as const) {
    it(`flags a 0.5σ mean shift on the shifted feature only (reference ${refRows} rows → ${method})`, () => {
      const draw = world(100 + refRows);
      const profile = computeReferenceProfile(draw(refRows), spec);
      for (const feature of NUMERIC) {
        const report = evaluateDrift(profile.sketch, sketchOf(profile, draw(1000, { shift: { feature, sd: 0.5 } })));
        const r = report.features.find((f) => f.feature === feature)!;
        assert.equal(r.method, method);
        assert.deepEqual(drifted(report), [feature], `only ${feature} drifts: ${JSON.stringify(report.features.map((f) => [f.feature, f.score]))}`);
        assert.equal(report.dataset.driftedShare, 1 / 5);
        assert.equal(report.dataset.drifted, false, 'one feature of five is below the 50 % dataset threshold');
      }
    });
  }

  it('flags a categorical shift with chi-square, and a new category through `other`', () => {
    const draw = world(7);
    const profile = computeReferenceProfile(draw(1000), spec);
    const shifted = evaluateDrift(profile.sketch, sketchOf(profile, draw(1000, { colors: [0.4, 0.35, 0.25] })));
    const color = shifted.features.find((f) => f.feature === 'color')!;
    assert.equal(color.method, 'chisquare');
    assert.ok(color.drifted && color.pValue! < 0.05, `p = ${color.pValue}`);
    assert.deepEqual(drifted(shifted), ['color']);

    const rows = draw(1000);
    rows.slice(0, 100).forEach((r) => (r.color = 'purple')); // unseen at reference time
    const unseen = evaluateDrift(profile.sketch, sketchOf(profile, rows)).features.find((f) => f.feature === 'color')!;
    assert.ok(unseen.drifted && unseen.pValue! < 1e-10);
  });

  it('evaluates prediction drift on outputs without counting it in the dataset share', () => {
    const draw = world(8);
    const profile = computeReferenceProfile(draw(1000), spec);
    const report = evaluateDrift(profile.sketch, sketchOf(profile, draw(1000, { classes: [0.4, 0.4] })));
    assert.deepEqual(
      report.outputs.map((o) => [o.feature, o.method, o.drifted]),
      [
        ['predictedClass', 'chisquare', true],
        ['confidence', 'ks', false],
      ],
    );
    assert.equal(report.dataset.driftedCount, 0);
  });
});

describe('evaluateDrift: false positives without drift', () => {
  const WINDOWS = 200;
  const WINDOW_ROWS = 1000;

  it(`stays at or below α = 5 % per feature test over ${WINDOWS} windows of ${WINDOW_ROWS} samples (fresh 1,000-row reference each)`, () => {
    // Calibration: each window against its own independent reference, the setting p-values are defined for.
    const draw = world(31337);
    let numeric = 0;
    let categorical = 0;
    for (let w = 0; w < WINDOWS; w++) {
      const profile = computeReferenceProfile(draw(1000), spec);
      const report = evaluateDrift(profile.sketch, sketchOf(profile, draw(WINDOW_ROWS)));
      for (const f of report.features) if (f.drifted) f.kind === 'numeric' ? numeric++ : categorical++;
    }
    const fprNumeric = numeric / (WINDOWS * NUMERIC.length);
    const fprCategorical = categorical / WINDOWS;
    console.log(`FPR (fresh reference): KS ${(fprNumeric * 100).toFixed(2)} % of ${WINDOWS * NUMERIC.length}, chi-square ${(fprCategorical * 100).toFixed(2)} % of ${WINDOWS}`);
    assert.ok(fprNumeric <= 0.05, `KS FPR ${fprNumeric}`);
    // 200 trials: allow two binomial standard errors (√(0.05·0.95/200) ≈ 1.5 %) above α.
    assert.ok(fprCategorical <= 0.08, `chi-square FPR ${fprCategorical}`);
  });

  for (const refRows of [1000, 5000]) {
    it(`against one fixed ${refRows}-row reference: measures per-feature and dataset FPR over ${WINDOWS} windows`, () => {
      // Operations: every window is compared with the same reference sample, so that sample's own
      // noise is shared by all windows and the per-feature rate depends on how typical it was.
      const draw = world(4242 + refRows);
      const profile = computeReferenceProfile(draw(refRows), spec);
      const perFeature: Record<string, number> = {};
      let dataset = 0;
      for (let w = 0; w < WINDOWS; w++) {
        const report = evaluateDrift(profile.sketch, sketchOf(profile, draw(WINDOW_ROWS)));
        for (const f of report.features) perFeature[f.feature] = (perFeature[f.feature] ?? 0) + (f.drifted ? 1 : 0);
        if (report.dataset.drifted) dataset++;
      }
      const rates = Object.fromEntries(Object.entries(perFeature).map(([k, v]) => [k, v / WINDOWS]));
      const pooled = Object.values(perFeature).reduce((a, b) => a + b, 0) / (WINDOWS * 5);
      console.log(`FPR (fixed ${refRows}-row reference): per feature ${JSON.stringify(rates)}, pooled ${(pooled * 100).toFixed(2)} %, dataset verdict ${((dataset / WINDOWS) * 100).toFixed(2)} %`);
      assert.ok(dataset / WINDOWS <= 0.01, 'dataset-level false alarms stay at or below 1 %');
      if (refRows > 1000) for (const [k, r] of Object.entries(rates)) assert.ok(r <= 0.05, `${k}: ${r}`);
    });
  }
});

describe('evaluateDrift: small windows', () => {
  it('a distance over its threshold on a 100-row unshifted window is not drift unless the test at that n agrees', () => {
    // 20,000-row reference → normed Wasserstein; 100-row windows carry enough sampling noise to reach 0.1.
    const draw = world(13);
    const profile = computeReferenceProfile(draw(20_000), spec);
    let overThreshold = 0;
    for (let w = 0; w < 40; w++) {
      const cur = sketchOf(profile, draw(100));
      const plain = evaluateDrift(profile.sketch, cur, { significance: null }).features.find((f) => f.feature === 'f0')!;
      const gated = evaluateDrift(profile.sketch, cur).features.find((f) => f.feature === 'f0')!;
      assert.equal(gated.score, plain.score, 'the distance itself is unchanged');
      assert.equal(gated.significance!.method, 'ks');
      assert.equal(gated.drifted, plain.drifted && gated.significance!.pValue < 0.05);
      if (plain.drifted) {
        overThreshold++;
        assert.ok(!gated.drifted || gated.pValue! < 0.05);
      }
    }
    assert.ok(overThreshold >= 10, `the distance alone flags many unshifted 100-row windows (${overThreshold} of 40)`);
    // A real 1σ shift on a 100-row window: both agree.
    const shifted = evaluateDrift(profile.sketch, sketchOf(profile, draw(100, { shift: { feature: 'f0', sd: 1 } }))).features.find((f) => f.feature === 'f0')!;
    assert.ok(shifted.drifted, JSON.stringify(shifted));
    // Categorical distances are gated by chi-square.
    assert.equal(evaluateDrift(profile.sketch, sketchOf(profile, draw(100))).features.find((f) => f.feature === 'color')!.significance!.method, 'chisquare');
  });
});

describe('evaluateDrift: configuration', () => {
  const draw = world(5);
  const profile = computeReferenceProfile(draw(1000), spec);
  const current = sketchOf(profile, draw(1000, { shift: { feature: 'f0', sd: 0.5 } }));

  it('reports insufficient_data below minSamples, neither drifted nor counted', () => {
    const small = evaluateDrift(profile.sketch, sketchOf(profile, draw(99, { shift: { feature: 'f0', sd: 3 } })));
    assert.ok(small.features.every((f) => f.verdict === 'insufficient_data' && !f.drifted && f.score === null));
    assert.deepEqual(small.dataset, { evaluated: 0, driftedCount: 0, driftedShare: 0, threshold: 0.5, drifted: false, verdict: 'insufficient_data' });
    assert.equal(evaluateDrift(profile.sketch, sketchOf(profile, draw(99)), { minSamples: 50 }).dataset.evaluated, 5);
    assert.equal(small.features[0].reason, 'window has 99 values, needs 100 (minSamples)');
    // The reference side is named as such: waiting for more traffic will not fix it.
    const tinyRef = computeReferenceProfile(draw(40), spec);
    const r = evaluateDrift(tinyRef.sketch, sketchOf(tinyRef, draw(500))).features[0];
    assert.deepEqual([r.verdict, r.reason], ['insufficient_data', 'reference has 40 values, needs 100 (minSamples): set a larger reference']);
    assert.deepEqual(referenceWarnings(tinyRef.sketch, DriftConfig.parse({})).slice(0, 2), [
      'reference has 40 rows; below 5,000 its own sampling noise is shared by every window, so single features false-alarm more often (a fixed 500-row reference flagged an unshifted feature in 42 % of 1,000-row windows); use ≥ 5,000 rows or act on the dataset verdict',
      'feature "f0": reference has 40 values, needs 100 (minSamples), so it will always be insufficient_data',
    ]);
    assert.deepEqual(referenceWarnings(computeReferenceProfile(draw(5000), spec).sketch, DriftConfig.parse({})), []);
  });

  it('applies per-feature method and threshold overrides and can disable a feature', () => {
    const r = evaluateDrift(profile.sketch, current, {
      features: { f0: { method: 'psi', threshold: 5 }, f1: { method: 'jensenshannon' }, color: { enabled: false } },
      thresholds: { ks: 0.01 },
    });
    const f0 = r.features.find((f) => f.feature === 'f0')!;
    assert.deepEqual([f0.method, f0.threshold, f0.drifted], ['psi', 5, false]);
    assert.ok(f0.score! > 0.1, 'a 0.5σ shift is a moderate PSI');
    assert.equal(r.features.find((f) => f.feature === 'f1')!.method, 'jensenshannon');
    assert.equal(r.features.find((f) => f.feature === 'f2')!.threshold, 0.01);
    assert.ok(!r.features.some((f) => f.feature === 'color'));
    assert.equal(r.features.length, 4);
  });

  it('dataset verdict follows datasetThreshold', () => {
    assert.equal(evaluateDrift(profile.sketch, current, { datasetThreshold: 0.2 }).dataset.drifted, true);
    assert.equal(evaluateDrift(profile.sketch, current).dataset.drifted, false);
  });

  it('refuses a method that does not fit the feature kind, and sketches on other edges', () => {
    assert.throws(() => evaluateDrift(profile.sketch, current, { features: { color: { method: 'ks' } } }), DriftConfigError);
    assert.throws(() => evaluateDrift(profile.sketch, current, { features: { f0: { method: 'chisquare' } } }), DriftConfigError);
    const other = computeReferenceProfile(draw(1000), spec);
    assert.throws(() => evaluateDrift(profile.sketch, sketchOf(other, draw(200))), (e: unknown) => e instanceof SketchMismatchError && e.code === 'edges_mismatch');
    assert.throws(() => DriftConfig.parse({ minSamples: 0 }));
    assert.throws(() => DriftConfig.parse({ numericMethod: 'chisquare' }));
  });

  it('with huge windows, the nₑ cap keeps KS from flagging a practically irrelevant 0.03σ shift', () => {
    const big = world(77);
    const bigProfile = computeReferenceProfile(big(100_000), spec);
    const cur = sketchOf(bigProfile, big(100_000, { shift: { feature: 'f0', sd: 0.03 } }));
    const cfg = { numericMethod: 'ks' as const };
    const uncapped = evaluateDrift(bigProfile.sketch, cur, { ...cfg, maxEffectiveN: null }).features.find((f) => f.feature === 'f0')!;
    const capped = evaluateDrift(bigProfile.sketch, cur, cfg).features.find((f) => f.feature === 'f0')!;
    console.log(`0.03σ shift, 100k vs 100k: KS D = ${uncapped.statistic!.toFixed(4)}, p = ${uncapped.pValue!.toExponential(2)} uncapped (nₑ = 50,000), ${capped.pValue!.toFixed(3)} with nₑ capped at 1,000`);
    assert.equal(uncapped.drifted, true);
    assert.equal(capped.drifted, false);
    // The default for a reference this large is normed Wasserstein, which measures size, not evidence.
    const auto = evaluateDrift(bigProfile.sketch, cur).features.find((f) => f.feature === 'f0')!;
    assert.deepEqual([auto.method, auto.drifted], ['wasserstein', false]);
  });
});
