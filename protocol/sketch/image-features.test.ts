import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SketchError } from './errors.ts';
import { computeImageFeatures, imageFeatureNames, imageFeatureRow } from './image-features.ts';
import { mulberry32 } from './random.ts';

/** Straightforward two-dimensional reference implementation (no shared code with the fast one). */
function naive(px: Uint8Array, w: number, h: number, c: number) {
  const luma: number[][] = [];
  const means = new Array(c).fill(0);
  for (let y = 0; y < h; y++) {
    luma.push([]);
    for (let x = 0; x < w; x++) {
      const p = (y * w + x) * c;
      for (let k = 0; k < c; k++) means[k] += px[p + k] / (w * h);
      luma[y].push(c === 1 ? px[p] : 0.299 * px[p] + 0.587 * px[p + 1] + 0.114 * px[p + 2]);
    }
  }
  const all = luma.flat();
  const mean = all.reduce((a, b) => a + b, 0) / all.length;
  const std = Math.sqrt(all.reduce((a, b) => a + (b - mean) ** 2, 0) / all.length);
  const laps: number[] = [];
  for (let y = 1; y < h - 1; y++) for (let x = 1; x < w - 1; x++) laps.push(luma[y - 1][x] + luma[y + 1][x] + luma[y][x - 1] + luma[y][x + 1] - 4 * luma[y][x]);
  const lm = laps.reduce((a, b) => a + b, 0) / Math.max(1, laps.length);
  const lv = laps.length ? laps.reduce((a, b) => a + (b - lm) ** 2, 0) / laps.length : 0;
  return { brightness: mean, contrast: std, sharpness: lv, means };
}

function randomImage(w: number, h: number, c: number, seed: number): Uint8Array {
  const rng = mulberry32(seed);
  return Uint8Array.from({ length: w * h * c }, () => Math.floor(rng() * 256));
}

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

describe('computeImageFeatures', () => {
  for (const c of [1, 3, 4] as const) {
    it(`matches a naive implementation on a random ${c}-channel image`, () => {
      const px = randomImage(37, 23, c, c);
      const f = computeImageFeatures(px, 37, 23, c);
      const r = naive(px, 37, 23, c);
      close(f.brightness, r.brightness, 'brightness');
      close(f.contrast, r.contrast, 'contrast');
      close(f.sharpness, r.sharpness, 'sharpness');
      f.channelMeans.forEach((m, i) => close(m, r.means[i], `mean ${i}`));
      assert.equal(f.width, 37);
      assert.equal(f.height, 23);
      close(f.aspect, 37 / 23, 'aspect');
    });
  }

  it('gives zero contrast and sharpness for a flat image, and a blurred image is less sharp', () => {
    const flat = computeImageFeatures(new Uint8Array(16 * 16 * 3).fill(200), 16, 16, 3);
    close(flat.brightness, 200, 'brightness');
    assert.equal(flat.contrast, 0);
    assert.equal(flat.sharpness, 0);
    // Checkerboard vs its 3×3 box blur.
    const w = 32;
    const sharp = new Uint8Array(w * w).map((_, i) => (((i % w) + Math.floor(i / w)) % 2 ? 255 : 0));
    const blurred = new Uint8Array(w * w);
    for (let y = 0; y < w; y++)
      for (let x = 0; x < w; x++) {
        let s = 0;
        let n = 0;
        for (let dy = -1; dy <= 1; dy++)
          for (let dx = -1; dx <= 1; dx++) {
            const yy = y + dy;
            const xx = x + dx;
            if (yy >= 0 && yy < w && xx >= 0 && xx < w) (s += sharp[yy * w + xx]), n++;
          }
        blurred[y * w + x] = Math.round(s / n);
      }
    assert.ok(computeImageFeatures(blurred, w, w, 1).sharpness < computeImageFeatures(sharp, w, w, 1).sharpness / 10);
  });

  it('refuses a buffer whose size does not match width × height × channels', () => {
    assert.throws(() => computeImageFeatures(new Uint8Array(10), 2, 2, 3), SketchError);
    assert.throws(() => computeImageFeatures(new Uint8Array(12), 2, 2, 2 as 3), SketchError);
  });

  it('flattens into a row with the documented feature names', () => {
    const f = computeImageFeatures(randomImage(8, 4, 3, 1), 8, 4, 3);
    const row = imageFeatureRow(f);
    assert.deepEqual(Object.keys(row).sort(), imageFeatureNames(3).slice().sort());
    assert.equal(row.mean_g, f.channelMeans[1]);
    assert.equal(row.aspect, 2);
  });

  it('is fast: measures µs per 224×224 and 32×32 RGB image', () => {
    const results: Record<string, number> = {};
    for (const [size, iterations] of [
      [224, 300],
      [32, 20_000],
    ] as const) {
      const px = randomImage(size, size, 3, size);
      for (let i = 0; i < 50; i++) computeImageFeatures(px, size, size, 3); // warm-up (JIT)
      const t0 = process.hrtime.bigint();
      let sink = 0;
      for (let i = 0; i < iterations; i++) sink += computeImageFeatures(px, size, size, 3).sharpness;
      const us = Number(process.hrtime.bigint() - t0) / 1000 / iterations;
      assert.ok(sink > 0);
      results[`${size}x${size}`] = us;
      console.log(`image features ${size}x${size}x3: ${us.toFixed(1)} µs per image`);
    }
    // Generous bounds (shared CI machines): far below sharp().stats() at ~14 ms per image.
    assert.ok(results['224x224'] < 5_000);
    assert.ok(results['32x32'] < 200);
  });
});
