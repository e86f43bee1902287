// The stored form of sketches: every kind of feature and output round-trips exactly (the same JSON
// text as the sketch itself, empty features' null min/max included), it is smaller than the JSON
// text, older rows' JSON text is still read, and bytes that are not a stored sketch are refused.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addRow, createFeatureSetSketch, type SketchLayout } from './feature-set-sketch.ts';
import { gaussian, mulberry32 } from './random.ts';
import { decodeSketch, encodeSketch, readStoredSketch } from './sketch-blob.ts';

const edges = (n: number, from: number, step: number) => Array.from({ length: n }, (_, i) => from + i * step + 0.1234567891234);

function filled(layout: SketchLayout, rows: number, seed: number) {
  const g = gaussian(mulberry32(seed));
  const s = createFeatureSetSketch(layout);
  for (let i = 0; i < rows; i++) {
    addRow(s, { a: g() * 3, b: ['x', 'y', 'z', 'w'][i % 4], c: i % 5 ? g() : null, d: i % 3 ? 'k' : null, extra: 1 }, { predictedClass: i % 3, confidence: Math.abs(g()) % 1, value: g() * 10 });
  }
  return s;
}

describe('stored sketches (sketch-blob)', () => {
  const features = { a: { kind: 'numeric' as const, edges: edges(21, -5, 0.5) }, b: { kind: 'categorical' as const, categories: ['x', 'y', 'z'] }, c: { kind: 'numeric' as const, edges: [0, 1] }, d: { kind: 'categorical' as const, categories: ['k', 'ü "quoted"'] } };
  const layouts: Record<string, SketchLayout> = {
    classification: { features, outputs: { task: 'classification', numClasses: 3 } },
    regression: { features, outputs: { task: 'regression', edges: edges(10, -20, 4) } },
    none: { features, outputs: { task: 'none' } },
  };

  for (const [name, layout] of Object.entries(layouts)) {
    it(`round-trips a ${name} sketch exactly, empty or filled`, () => {
      for (const s of [createFeatureSetSketch(layout), filled(layout, 500, 3)]) {
        const bytes = encodeSketch(s);
        const back = decodeSketch(bytes);
        assert.deepStrictEqual(back, s);
        assert.equal(JSON.stringify(back), JSON.stringify(s), 'the same JSON text, keys in the same order');
        // As the driver hands a blob back: an ArrayBuffer, or a view at an odd offset.
        assert.deepStrictEqual(readStoredSketch(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)), s);
        const shifted = new Uint8Array(bytes.length + 3);
        shifted.set(bytes, 3);
        assert.deepStrictEqual(readStoredSketch(shifted.subarray(3)), s);
      }
    });
  }

  it('is smaller than the JSON text of a filled sketch', () => {
    const s = filled(layouts.classification, 500, 4);
    const bytes = encodeSketch(s).length;
    const json = JSON.stringify(s).length;
    assert.ok(bytes < json * 0.75, `${bytes} bytes vs ${json} of JSON`);
  });

  it('reads rows stored as JSON text before the binary form', () => {
    const s = filled(layouts.regression, 50, 5);
    assert.deepStrictEqual(readStoredSketch(JSON.stringify(s)), s);
  });

  it('refuses bytes that are not a stored sketch', () => {
    assert.throws(() => decodeSketch(new TextEncoder().encode('{"features":{}}')), /not a stored sketch/);
    assert.throws(() => readStoredSketch(42), /unexpected stored sketch/);
  });
});
