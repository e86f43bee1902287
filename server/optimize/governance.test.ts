import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { OptimizeError } from './errors.ts';
import { checkFairnessBudget, fairnessReport } from './fairness.ts';
import { governanceReport } from './governance.ts';
import { permutationImportance } from './importance.ts';
import { smallTabular } from './demo-fixtures.ts';
import { makeStripeImages } from './test-fixtures.ts';

describe('fairness: slice metrics and gaps', () => {
  // Group a: 4 samples, group b: 4 samples, 2 classes.
  //            a  a  a  a  b  b  b  b
  const labels = [1, 1, 0, 0, 1, 1, 0, 0];
  const preds = [1, 1, 1, 0, 1, 0, 0, 0];
  const groups = { g: ['a', 'a', 'a', 'a', 'b', 'b', 'b', 'b'] };

  it('computes per-group accuracy, predicted-class rates, recall and the gaps by hand-checked values', () => {
    const [r] = fairnessReport({ predictions: preds, labels, classes: 2, groups, minGroupSize: 1 });
    const [a, b] = r.groups;
    assert.deepEqual([a.group, a.n, a.accuracy, a.predictedRate, a.recall], ['a', 4, 0.75, [0.25, 0.75], [0.5, 1]]);
    assert.deepEqual([b.group, b.n, b.accuracy, b.predictedRate, b.recall], ['b', 4, 0.75, [0.75, 0.25], [1, 0.5]]);
    assert.equal(r.accuracyGapValue, 0);
    // P(ŷ=1|a) − P(ŷ=1|b) = 0.75 − 0.25; the same on class 0.
    assert.equal(r.demographicParityDifference, 0.5);
    // recall(1|a) − recall(1|b) = 1 − 0.5, and recall(0|b) − recall(0|a) = 1 − 0.5.
    assert.equal(r.equalOpportunityDifference, 0.5);
    const positive = fairnessReport({ predictions: preds, labels, classes: 2, groups, minGroupSize: 1, positiveClass: 1 })[0];
    assert.deepEqual([positive.demographicParity?.class, positive.demographicParity?.high, positive.demographicParity?.low], [1, 'a', 'b']);
    assert.deepEqual([positive.equalOpportunity?.high, positive.equalOpportunity?.low], ['a', 'b']);
  });

  it('leaves small groups out of the gaps and says so; checks the budget with reasons', () => {
    const [r] = fairnessReport({ predictions: preds, labels, classes: 2, groups: { g: ['a', 'a', 'a', 'a', 'b', 'b', 'b', 'c'] }, minGroupSize: 2 });
    assert.deepEqual(r.compared, ['a', 'b']);
    assert.match(r.notes[0], /c \(1\)/);
    const verdict = checkFairnessBudget([r], { maxDemographicParityDifference: 0.2 });
    assert.equal(verdict.accepted, false);
    assert.ok(verdict.reasons.some((x) => x.startsWith('g: demographic parity difference')));
    assert.equal(checkFairnessBudget([r], { maxDemographicParityDifference: 1, maxEqualOpportunityDifference: 1, maxAccuracyGap: 1 }).accepted, true);
  });
});

describe('permutation importance and the governance report (tabular MLP)', () => {
  const demo = smallTabular({ testRows: 800 });
  const mlp = demo.bytes;
  const test = demo.test;

  it('ranks the features the labels depend on above the distractors, reproducibly', async () => {
    const imp = await permutationImportance(mlp, test, { repeats: 3, seed: 42 });
    assert.equal(imp.metric, 'accuracy');
    assert.equal(imp.features.length, 8);
    const by = new Map(imp.features.map((f) => [f.feature, f.mean]));
    // The label is a function of f0…f3 only (see server/training/synthetic-tabular.ts); f4…f7 are noise.
    for (const used of ['f0', 'f2', 'f3']) assert.ok(by.get(used)! > 0.1, `${used}: ${by.get(used)}`);
    for (const noise of ['f4', 'f5', 'f6', 'f7']) assert.ok(Math.abs(by.get(noise)!) < 0.03, `${noise}: ${by.get(noise)}`);
    assert.deepEqual(new Set(imp.features.slice(0, 4).map((f) => f.feature)), new Set(['f0', 'f1', 'f2', 'f3']));
    const again = await permutationImportance(mlp, test, { repeats: 3, seed: 42 });
    assert.deepEqual(again, imp);
  });

  it('governanceReport: region slices, fairness verdict and importance in one call', async () => {
    const gov = await governanceReport(mlp, test, { importance: { repeats: 2 }, budget: { maxDemographicParityDifference: 0.5, maxEqualOpportunityDifference: 0.5, maxAccuracyGap: 0.5 } });
    assert.equal(gov.slices.length, 1);
    const region = gov.slices[0];
    assert.deepEqual(region.compared, ['north', 'south']);
    assert.equal(region.groups.reduce((s, g) => s + g.n, 0), 800);
    // South reads warmer on f0, so the class mix differs by region: a visible parity gap.
    assert.ok(region.demographicParityDifference > 0.02, String(region.demographicParityDifference));
    assert.equal(gov.fairness.accepted, true);
    assert.equal(gov.importance?.features.length, 8);
  });

  it('importance refuses image inputs with a reason', async () => {
    const images = makeStripeImages(4, 1);
    await assert.rejects(permutationImportance(mlp, images), (e: unknown) => e instanceof OptimizeError && e.reason === 'invalid_options');
  });
});
