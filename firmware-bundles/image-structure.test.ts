// Image drift that sees what matters: a flood of text-line images turned upside down (which keeps
// brightness, contrast and sharpness) is flagged by the structure features through the real
// reference → sketch → merge → evaluate path, normal traffic is not; and the size features are the
// image's as received, not the model's input size.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { evaluateDrift } from '../protocol/drift/evaluate.ts';
import { addRow, createFeatureSetSketch, mergeAllFeatureSetSketches } from '../protocol/sketch/feature-set-sketch.ts';
import { computeImageFeatures, imageFeatureNames, imageFeatureRow } from '../protocol/sketch/image-features.ts';
import { mulberry32 } from '../protocol/sketch/random.ts';
import { computeReferenceProfile, type ReferenceRow } from '../protocol/sketch/reference-profile.ts';
import { decodeImagePixels, imagePixelsFeatureRow } from './image-pixels.ts';

const W = 64;
const H = 24;

/** A left-aligned line of dark glyphs on paper: x-height body, some ascenders, fewer descenders. */
function textLine(seed: number): Uint8Array {
  const rand = mulberry32(seed);
  const px = new Uint8Array(W * H * 3);
  for (let i = 0; i < W * H; i++) px.fill(215 + Math.floor(rand() * 20), i * 3, i * 3 + 3);
  const end = Math.floor(W * (0.4 + 0.5 * rand()));
  for (let x = 2; x < end; ) {
    const glyph = 2 + Math.floor(rand() * 3);
    const top = rand() < 0.3 ? 4 : 9;
    const bottom = rand() < 0.1 ? 20 : 16;
    for (let gx = x; gx < Math.min(x + glyph, end); gx++) for (let y = top; y < bottom; y++) px.fill(30 + Math.floor(rand() * 40), (y * W + gx) * 3, (y * W + gx) * 3 + 3);
    x += glyph + 1 + Math.floor(rand() * 2);
  }
  return px;
}

/** Rotated 180°: what an upside-down scanner or camera sends. */
function upsideDown(px: Uint8Array): Uint8Array {
  const out = new Uint8Array(px.length);
  for (let i = 0; i < W * H; i++) out.set(px.subarray(i * 3, i * 3 + 3), (W * H - 1 - i) * 3);
  return out;
}

const row = (px: Uint8Array): ReferenceRow => imageFeatureRow(computeImageFeatures(px, W, H, 3));

describe('image structure features', () => {
  const names = imageFeatureNames(3);
  const spec = { features: names.map((name) => ({ name, kind: 'numeric' as const })) };
  const profile = computeReferenceProfile(
    Array.from({ length: 1000 }, (_, i) => row(textLine(i + 1))),
    spec,
  );
  const windowOf = (rows: ReferenceRow[]) => {
    const parts = Array.from({ length: 3 }, () => createFeatureSetSketch(profile.layout));
    rows.forEach((r, i) => addRow(parts[i % 3], r));
    return mergeAllFeatureSetSketches(parts);
  };

  it('an upside-down flood is flagged by the structure features; brightness and sharpness alone miss it', () => {
    const flipped = evaluateDrift(profile.sketch, windowOf(Array.from({ length: 300 }, (_, i) => row(upsideDown(textLine(50_000 + i))))));
    const drifted = new Set(flipped.features.filter((f) => f.drifted).map((f) => f.feature));
    console.table(Object.fromEntries(flipped.features.map((f) => [f.feature, { method: f.method, statistic: f.statistic?.toFixed(3), p: f.pValue?.toExponential(1), drifted: f.drifted }])));
    for (const f of ['center_x', 'left_right', 'top_bottom']) assert.ok(drifted.has(f), `${f} flagged (drifted: ${[...drifted].join(', ')})`);
    for (const f of ['brightness', 'contrast', 'sharpness', 'mean_r']) assert.ok(!drifted.has(f), `${f} cannot see a rotation, yet flagged`);
    const normal = evaluateDrift(profile.sketch, windowOf(Array.from({ length: 300 }, (_, i) => row(textLine(90_000 + i)))));
    assert.deepEqual(
      normal.features.filter((f) => f.drifted).map((f) => f.feature),
      [],
    );
    assert.equal(normal.dataset.drifted, false);
  });

  it('a 90° rotation moves the horizontal edge share', () => {
    const line = textLine(7);
    const rotated = new Uint8Array(line.length);
    // [H, W] → [W, H], rotated clockwise.
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) rotated.set(line.subarray((y * W + x) * 3, (y * W + x) * 3 + 3), (x * H + (H - 1 - y)) * 3);
    const a = computeImageFeatures(line, W, H, 3).structure.edge_h_share;
    const b = computeImageFeatures(rotated, H, W, 3).structure.edge_h_share;
    assert.ok(Math.abs(a + b - 1) < 0.05 && Math.abs(a - b) > 0.1, `edge_h_share ${a} → ${b}`);
  });

  it('width, height and aspect are the received image\'s, not the model input size', async () => {
    const spec = { width: 32, height: 32, fit: 'fill' as const, channels: 'rgb' as const };
    const wide = await sharp({ create: { width: 320, height: 80, channels: 3, background: { r: 200, g: 10, b: 10 } } }).png().toBuffer();
    const square = await sharp({ create: { width: 50, height: 50, channels: 3, background: { r: 200, g: 10, b: 10 } } }).png().toBuffer();
    const a = imagePixelsFeatureRow(await decodeImagePixels(spec, wide));
    const b = imagePixelsFeatureRow(await decodeImagePixels(spec, square));
    assert.deepEqual([a.width, a.height, a.aspect], [320, 80, 4]);
    assert.deepEqual([b.width, b.height, b.aspect], [50, 50, 1]);
  });
});
