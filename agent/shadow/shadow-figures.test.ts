import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LatencyHistogram, ShadowAccumulator } from './shadow-figures.ts';

test('classifiers compare the top-1 class per row and count each model\'s classes', () => {
  const acc = new ShadowAccumulator(true);
  // two rows of three logits: row 0 agrees (class 2), row 1 does not (0 vs 1)
  acc.add({ logits: { dims: [2, 3], data: [0, 1, 5, 9, 1, 2] } }, { logits: { dims: [2, 3], data: [1, 0, 3, 0, 4, 1] } }, { activeMs: 1, candidateMs: 2 });
  const f = acc.figures();
  assert.equal(f.compared, 1);
  assert.deepEqual(f.outputs, [{ output: 'logits', kind: 'top1', rows: 2, matches: 1, activeClasses: [1, 0, 1], candidateClasses: [0, 1, 1] }]);
});

test('regressors and single-score outputs get the mean absolute difference, per output', () => {
  const acc = new ShadowAccumulator(false);
  acc.add({ y: { dims: [1, 2], data: [1, 2] }, z: { dims: [1, 1], data: [0] } }, { y: { dims: [1, 2], data: [1.5, 1] }, z: { dims: [1, 1], data: [0.25] } }, { activeMs: 1, candidateMs: 1 });
  const [y, z] = acc.figures().outputs;
  assert.deepEqual(y, { output: 'y', kind: 'mad', values: 2, absDiffSum: 1.5, activeSum: 3, candidateSum: 2.5 });
  assert.equal(z.kind === 'mad' && z.absDiffSum, 0.25);
});

test('latency quantiles are within one 5 % bucket', () => {
  const h = new LatencyHistogram();
  for (let i = 1; i <= 100; i++) h.add(i);
  assert.ok(Math.abs(h.quantile(0.5) - 50) / 50 < 0.05, String(h.quantile(0.5)));
  assert.ok(Math.abs(h.quantile(0.95) - 95) / 95 < 0.05, String(h.quantile(0.95)));
  assert.equal(new LatencyHistogram().quantile(0.5), 0);
});
