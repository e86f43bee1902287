import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { evaluateFeatureDrift } from '../drift/evaluate.ts';
import { ksBinned } from '../drift/ks.ts';
import { addNumeric, createNumericSketch, type NumericSketch } from './numeric-sketch.ts';
import { discreteEdges, perValueEdges } from './discrete-edges.ts';
import { numericEdges } from './reference-profile.ts';
import { mulberry32 } from './random.ts';

function sketch(edges: number[], xs: number[]): NumericSketch {
  const s = createNumericSketch(edges);
  for (const x of xs) addNumeric(s, x);
  return s;
}

function poisson(rng: () => number, lambda: number): number {
  let k = 0;
  let p = 1;
  const l = Math.exp(-lambda);
  for (;;) {
    p *= rng();
    if (p <= l) return k;
    k++;
  }
}

/** Raw two-sample KS statistic (exact, on the samples). */
function rawKs(a: number[], b: number[]): number {
  const xs = [...new Set([...a, ...b])].sort((u, v) => u - v);
  const sa = a.slice().sort((u, v) => u - v);
  const sb = b.slice().sort((u, v) => u - v);
  let i = 0;
  let j = 0;
  let d = 0;
  for (const x of xs) {
    while (i < sa.length && sa[i] <= x) i++;
    while (j < sb.length && sb[j] <= x) j++;
    d = Math.max(d, Math.abs(i / sa.length - j / sb.length));
  }
  return d;
}

describe('discrete numeric features get a bin per value', () => {
  it('{0, 1}: two bins, and a 50/50 → all-ones shift is flagged with a 500-row reference', () => {
    const rng = mulberry32(1);
    const ref = Array.from({ length: 500 }, () => (rng() < 0.5 ? 1 : 0));
    const edges = numericEdges(ref, 20);
    assert.deepEqual(edges, [0, Number.MIN_VALUE, 1, 1.0000000000000002]);
    const r = sketch(edges, ref);
    assert.deepEqual(r.bins, [0, ref.filter((x) => x === 0).length, 0, ref.filter((x) => x === 1).length, 0]);
    const result = evaluateFeatureDrift('flag', r, sketch(edges, new Array(500).fill(1)));
    assert.equal(result.method, 'ks');
    assert.ok(result.drifted && result.pValue! < 1e-10, `p = ${result.pValue}`);
  });

  it('{0, 1, 2}: 1 and 2 no longer share a bin, so moving mass from 1 to 2 is seen', () => {
    const rng = mulberry32(2);
    const ref = Array.from({ length: 1000 }, () => Math.floor(rng() * 3));
    const edges = numericEdges(ref, 20);
    assert.equal(edges.length, 6);
    const cur = Array.from({ length: 1000 }, () => (rng() < 1 / 3 ? 0 : 2));
    const result = evaluateFeatureDrift('k', sketch(edges, ref), sketch(edges, cur));
    assert.ok(result.drifted, `p = ${result.pValue}`);
  });

  it('Poisson(3) moved off its integers: binned KS equals the raw KS (quantile bins hid most of it) and drift is flagged', () => {
    const rng = mulberry32(3);
    const ref = Array.from({ length: 20_000 }, () => poisson(rng, 3));
    const cur = Array.from({ length: 1000 }, () => poisson(rng, 3) + 0.5);
    const edges = numericEdges(ref, 20);
    const binned = ksBinned(sketch(edges, ref).bins, sketch(edges, cur).bins).statistic;
    const raw = rawKs(ref, cur);
    assert.ok(raw > 0.2, `raw KS ${raw}`);
    assert.ok(Math.abs(binned - raw) < 1e-12, `binned ${binned} vs raw ${raw}`);
    const result = evaluateFeatureDrift('count', sketch(edges, ref), sketch(edges, cur));
    assert.equal(result.method, 'wasserstein');
    assert.ok(result.drifted, JSON.stringify(result));
    // The same shift on quantile edges is invisible to the bins: what the issue measured.
    const old = ksBinned(sketch(numericEdges(ref, 20, 0), ref).bins, sketch(numericEdges(ref, 20, 0), cur).bins).statistic;
    assert.ok(old < 0.05 && old < raw / 5, `quantile-binned KS ${old} vs raw ${raw}`);
  });

  it('continuous and tiny columns keep quantile edges; edges stay strictly ascending at adjacent doubles', () => {
    const rng = mulberry32(4);
    assert.equal(discreteEdges(Array.from({ length: 1000 }, () => rng())), null);
    assert.equal(discreteEdges([1, 2, 3]), null, 'three rows, three values: not enough repeats to call it discrete');
    assert.equal(discreteEdges(Array.from({ length: 1000 }, (_, i) => i % 40)), null, '40 distinct values exceed the cap of 32');
    const e = perValueEdges([1, 1.0000000000000002, 5]);
    assert.deepEqual(e, [1, 1.0000000000000002, 1.0000000000000004, 5, 5.000000000000001]);
    for (let i = 1; i < e.length; i++) assert.ok(e[i] > e[i - 1]);
  });
});
