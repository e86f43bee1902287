import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareOutputs, runSmokeVectors, type SmokeCase } from './smoke.ts';

const y = { dims: [1, 3], data: [0.1, 0.2, 0.3] };

test('compareOutputs: within tolerance passes and reports the max abs diff', () => {
  const r = compareOutputs({ y }, { y: { dims: [1, 3], data: new Float32Array([0.1, 0.20005, 0.3]) }, extra: { dims: [1], data: [5] } }, 1e-4);
  assert.ok(r.ok);
  assert.ok(r.maxAbsDiff > 4e-5 && r.maxAbsDiff < 6e-5, String(r.maxAbsDiff));
});

test('compareOutputs: value, shape, missing output and NaN are failures', () => {
  const value = compareOutputs({ y }, { y: { dims: [1, 3], data: [0.1, 0.2, 0.31] } }, 1e-3);
  assert.deepEqual(value.failures.map((f) => f.code), ['VALUE_MISMATCH']);
  assert.match(value.failures[0].message, /y\[2\]/);
  assert.deepEqual(compareOutputs({ y }, { y: { dims: [3, 1], data: [0.1, 0.2, 0.3] } }, 1).failures.map((f) => f.code), ['SHAPE_MISMATCH']);
  assert.deepEqual(compareOutputs({ y }, { y: { dims: [1, 3], data: [0.1, 0.2] } }, 1).failures.map((f) => f.code), ['SHAPE_MISMATCH']);
  assert.deepEqual(compareOutputs({ y }, { z: y }, 1).failures.map((f) => f.code), ['MISSING_OUTPUT']);
  const nan = compareOutputs({ y }, { y: { dims: [1, 3], data: [0.1, NaN, 0.3] } }, 1e9);
  assert.equal(nan.ok, false);
  assert.equal(nan.maxAbsDiff, Infinity);
});

test('runSmokeVectors: runs each vector, collects failures with their index, turns throws into RUN_ERROR', async () => {
  const vectors: SmokeCase[] = [
    { inputs: { x: { dims: [1, 2], data: [1, 2] } }, expected: { y: { dims: [1, 2], data: [2, 4] } } },
    { inputs: { x: { dims: [1, 2], data: [3, 4] } }, expected: { y: { dims: [1, 2], data: [6, 8] } } },
  ];
  const double = async (feeds: SmokeCase['inputs']) => ({ y: { dims: feeds.x.dims, data: feeds.x.data.map((v) => v * 2) } });
  assert.deepEqual(await runSmokeVectors(double, vectors, 1e-6), { ok: true, maxAbsDiff: 0, failures: [] });

  const offByOneOnSecond = async (feeds: SmokeCase['inputs']) => ({ y: { dims: feeds.x.dims, data: feeds.x.data.map((v) => v * 2 + (v > 2 ? 1 : 0)) } });
  const r = await runSmokeVectors(offByOneOnSecond, vectors, 0.5);
  assert.equal(r.ok, false);
  assert.equal(r.maxAbsDiff, 1);
  assert.deepEqual(r.failures.map((f) => [f.vector, f.code, f.output]), [[1, 'VALUE_MISMATCH', 'y']]);

  const crash = await runSmokeVectors(async () => { throw new Error('session released'); }, vectors, 1);
  assert.deepEqual(crash.failures.map((f) => [f.vector, f.code]), [[0, 'RUN_ERROR'], [1, 'RUN_ERROR']]);
  assert.match(crash.failures[0].message, /session released/);
});
