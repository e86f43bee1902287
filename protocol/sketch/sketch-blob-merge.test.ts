// Merging stored sketches in their binary form equals merging the sketch objects: over random windows
// (empty ones, features with nulls only, every output kind), a window list merged number by number
// gives the bytes of mergeAllFeatureSetSketches' result, and merging that into an older rollup the bytes
// of mergeFeatureSetSketches(old, batch) — bit for bit, so a rollup merged in place is the rollup the
// object merge stored. Other edges are refused with `a` left as it was.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addRow, createFeatureSetSketch, mergeAllFeatureSetSketches, mergeFeatureSetSketches, type FeatureSetSketch, type SketchLayout } from './feature-set-sketch.ts';
import { gaussian, mulberry32 } from './random.ts';
import { encodeSketch, sketchNumbersLayout } from './sketch-blob.ts';
import { mergeSketchNumbers, sketchBytesWith, sketchNumbers, sketchNumbersView } from './sketch-blob-merge.ts';

const edges = (n: number, from: number, step: number) => Array.from({ length: n }, (_, i) => from + i * step + 0.1234567891234);

function window(layout: SketchLayout, rows: number, seed: number): FeatureSetSketch {
  const u = mulberry32(seed);
  const g = gaussian(mulberry32(seed + 1));
  const shift = u() * 1e6 * (u() < 0.3 ? 1 : 0); // large offsets: where the moments' rounding shows
  const s = createFeatureSetSketch(layout);
  for (let i = 0; i < rows; i++) {
    const r = u();
    addRow(
      s,
      { a: shift + g() * 3, b: ['x', 'y', 'z', 'w'][Math.floor(u() * 4)], c: r < 0.4 ? null : g(), d: r < 0.5 ? 'k' : r < 0.6 ? null : 'q', e: seed % 3 === 0 ? null : g() * 1e-3 },
      { predictedClass: Math.floor(u() * 3), confidence: u(), value: g() * 10 },
    );
  }
  return s;
}

/** The windows' bytes merged in place, left to right (what ingest does with a batch's windows of one rollup). */
function mergedBytes(blobs: Buffer[]): Buffer {
  const layout = sketchNumbersLayout(blobs[0]);
  const acc = sketchNumbers(blobs[0], layout);
  const scratch = new Float64Array(layout.count);
  for (const b of blobs.slice(1)) assert.ok(mergeSketchNumbers(layout, acc, sketchNumbersView(b, sketchNumbersLayout(b), scratch)));
  return sketchBytesWith(blobs[0], layout, acc);
}

describe('merging stored sketches in place (sketch-blob-merge)', () => {
  const features = { a: { kind: 'numeric' as const, edges: edges(21, -5, 0.5) }, b: { kind: 'categorical' as const, categories: ['x', 'y', 'z'] }, c: { kind: 'numeric' as const, edges: [0, 1] }, d: { kind: 'categorical' as const, categories: ['k', 'ü "quoted"'] }, e: { kind: 'numeric' as const, edges: edges(5, -0.01, 0.005) } };
  const layouts: Record<string, SketchLayout> = {
    classification: { features, outputs: { task: 'classification', numClasses: 3 } },
    regression: { features, outputs: { task: 'regression', edges: edges(10, -20, 4) } },
    none: { features, outputs: { task: 'none' } },
  };

  for (const [name, layout] of Object.entries(layouts)) {
    it(`${name}: equals the object merge bit for bit, over random windows and batches`, () => {
      const u = mulberry32(name.length);
      for (let trial = 0; trial < 40; trial++) {
        const n = 1 + Math.floor(u() * 12);
        // Empty windows too (count 0: the moments are taken from the other side).
        const windows = Array.from({ length: n }, (_, i) => window(layout, u() < 0.15 ? 0 : 1 + Math.floor(u() * 200), trial * 100 + i));
        const blobs = windows.map(encodeSketch);
        const batch = mergedBytes(blobs);
        const expected = mergeAllFeatureSetSketches(windows);
        assert.ok(batch.equals(encodeSketch(expected)), `trial ${trial}: batch of ${n}`);
        // Into an older rollup: old ⊕ batch, `a` being the stored row.
        const old = mergeAllFeatureSetSketches([window(layout, Math.floor(u() * 300), 7000 + trial), window(layout, 50, 8000 + trial)]);
        const oldBlob = encodeSketch(old);
        const layoutOf = sketchNumbersLayout(oldBlob);
        const into = sketchNumbers(oldBlob, layoutOf);
        assert.ok(mergeSketchNumbers(layoutOf, into, sketchNumbers(batch, sketchNumbersLayout(batch))));
        assert.ok(sketchBytesWith(oldBlob, layoutOf, into).equals(encodeSketch(mergeFeatureSetSketches(old, expected))), `trial ${trial}: into the stored rollup`);
      }
    });
  }

  it('shares one layout object for sketches of one header, reads bytes at any offset', () => {
    const layout = layouts.classification;
    const [x, y] = [window(layout, 10, 1), window(layout, 20, 2)].map(encodeSketch);
    assert.equal(sketchNumbersLayout(x), sketchNumbersLayout(y));
    const shifted = new Uint8Array(y.length + 3);
    shifted.set(y, 3);
    assert.ok(mergedBytes([x, Buffer.from(shifted.buffer, 3, y.length)]).equals(mergedBytes([x, y])));
  });

  it('refuses other edges and leaves the rollup as it was', () => {
    const a = encodeSketch(window(layouts.none, 30, 1));
    const other: SketchLayout = { features: { ...features, c: { kind: 'numeric', edges: [0, 2] } }, outputs: { task: 'none' } };
    const b = encodeSketch(window(other, 30, 2));
    const layout = sketchNumbersLayout(a);
    assert.equal(sketchNumbersLayout(b).text, layout.text, 'same header: only the edges differ');
    const nums = sketchNumbers(a, layout);
    assert.equal(mergeSketchNumbers(layout, nums, sketchNumbers(b, layout)), false);
    assert.ok(sketchBytesWith(a, layout, nums).equals(a));
  });
});
