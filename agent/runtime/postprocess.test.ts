import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RuntimeError } from './errors.ts';
import { postprocess, softmax, topK } from './postprocess.ts';

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('softmax is numerically stable: huge logits give the same answer as shifted ones', () => {
  const small = softmax([0, 1, 2]);
  const huge = softmax([1000, 1001, 1002]);
  const negative = softmax([-1000, -999, -998]);
  for (let i = 0; i < 3; i++) {
    close(huge[i], small[i]);
    close(negative[i], small[i]);
  }
  close(small.reduce((a, b) => a + b, 0), 1);
  close(small[2], Math.exp(2) / (1 + Math.exp(1) + Math.exp(2)));
  assert.ok(huge.every(Number.isFinite));
});

test('top-K per row, highest first, labelled; ties keep the lower index; K larger than the classes is clamped', () => {
  const out = { logits: { type: 'float32', dims: [2, 4], data: Float32Array.of(0.1, 0.7, 0.2, 0.7, 5, 1, 3, 2) } };
  const p = postprocess(out, { softmax: false, topK: 2, task: 'classification' }, ['a', 'b', 'c', 'd']);
  assert.equal(p.length, 2);
  assert.deepEqual(p[0].map((x) => [x.label, x.index]), [['b', 1], ['d', 3]]);
  assert.deepEqual(p[1].map((x) => x.label), ['a', 'c']);
  close(p[1][0].score, 5);
  const all = postprocess(out, { softmax: true, topK: 10, task: 'classification' });
  assert.equal(all[0].length, 4);
  assert.equal(all[0][0].label, '1', 'no labels: the index as a string');
  close(all[1].reduce((s, x) => s + x.score, 0), 1, 1e-9);
  assert.deepEqual(topK([1, NaN, 3], 3), [2, 0, 1], 'NaN sorts last');
});

test('the named output is used, else the first; a missing output is BUNDLE_MISMATCH', () => {
  const outputs = {
    first: { type: 'float32', dims: [1, 2], data: Float32Array.of(1, 0) },
    probs: { type: 'float32', dims: [1, 2], data: Float32Array.of(0.2, 0.8) },
  };
  assert.equal(postprocess(outputs, { softmax: false, topK: 1, task: 'classification' })[0][0].index, 0);
  assert.equal(postprocess(outputs, { softmax: false, topK: 1, task: 'classification', output: 'probs' })[0][0].index, 1);
  assert.throws(() => postprocess(outputs, { softmax: false, topK: 1, task: 'classification', output: 'nope' }), (e: RuntimeError) => e.code === 'BUNDLE_MISMATCH');
});

test('regression passes the values through per row, named by labels or the output', () => {
  const out = { y: { type: 'float32', dims: [3, 1], data: Float32Array.of(1.5, -2, 1000) } };
  const p = postprocess(out, { softmax: true, topK: 1, task: 'regression' });
  assert.deepEqual(p, [[{ label: 'y', index: 0, score: 1.5 }], [{ label: 'y', index: 0, score: -2 }], [{ label: 'y', index: 0, score: 1000 }]]);
  const two = postprocess({ y: { type: 'float64', dims: [1, 2], data: Float64Array.of(3, 4) } }, { softmax: false, topK: 1, task: 'regression' }, ['price', 'volume']);
  assert.deepEqual(two[0].map((x) => [x.label, x.score]), [['price', 3], ['volume', 4]]);
  const unnamed = postprocess({ y: { type: 'float32', dims: [1, 2], data: Float32Array.of(3, 4) } }, { softmax: false, topK: 1, task: 'regression' });
  assert.equal(unnamed[0][1].label, 'y[1]');
});

test('int64 outputs (e.g. a class index) and rank-1 outputs are one row', () => {
  const p = postprocess({ label: { type: 'int64', dims: [3], data: BigInt64Array.of(4n, 9n, 1n) } }, { softmax: false, topK: 1, task: 'classification' });
  assert.deepEqual(p, [[{ label: '1', index: 1, score: 9 }]]);
});
