// Merging sketches in their binary form (sketch-blob.ts): the numbers of one stored sketch added into
// another's, in place on a Float64Array, without a sketch object per window. Ingest merges a batch's
// windows into each rollup this way and writes the rollup's bytes once per batch; decoding every
// window's bytes into objects, merging the objects and encoding the result again cost a third of the
// `stats` writer and most of its garbage.
//
// The arithmetic is that of `mergeFeatureSetSketches(a, b)` (numeric-sketch.ts, categorical-sketch.ts),
// operation for operation, so the bytes equal `encodeSketch` of the objects merged in the same order
// (sketch-blob-merge.test.ts holds them to it). Only sketches with the same header merge here; anything
// else (another feature order, JSON text of old rows) is left to the object merge.
import { type SketchNumbersLayout } from './sketch-blob.ts';

const QUALITY = 6;

/**
 * A copy of a stored sketch's numbers, aligned (the bytes may start anywhere in their buffer), into
 * `into` when given (it must hold `layout.count` numbers).
 */
export function sketchNumbers(bytes: Uint8Array, layout: SketchNumbersLayout, into?: Float64Array): Float64Array {
  const out = into ?? new Float64Array(layout.count);
  if (out.length < layout.count) throw new RangeError(`${layout.count} numbers do not fit in ${out.length}`);
  new Uint8Array(out.buffer, out.byteOffset, layout.count * 8).set(bytes.subarray(layout.start, layout.start + layout.count * 8));
  return out;
}

/**
 * A stored sketch's numbers to read: a view on the bytes when they are 8-byte aligned in their buffer
 * (a decoded base64 window, a blob the driver returned: no copy), else a copy (into `scratch` when given).
 */
export function sketchNumbersView(bytes: Uint8Array, layout: SketchNumbersLayout, scratch?: Float64Array): Float64Array {
  const at = bytes.byteOffset + layout.start;
  return at % 8 === 0 ? new Float64Array(bytes.buffer, at, layout.count) : sketchNumbers(bytes, layout, scratch);
}

/** The stored bytes of `nums` under the header of `like` (a sketch of the same layout). */
export function sketchBytesWith(like: Uint8Array, layout: SketchNumbersLayout, nums: Float64Array): Buffer {
  // Its own allocation (not the shared pool), like encodeSketch's.
  const out = Buffer.alloc(layout.start + layout.count * 8);
  out.set(like.subarray(0, layout.start), 0);
  out.set(new Uint8Array(nums.buffer, nums.byteOffset, layout.count * 8), layout.start);
  return out;
}

/** Whether every numeric feature and output of `a` and `b` has the same edges (sameEdges, value by value). */
export function sameSketchEdges(layout: SketchNumbersLayout, a: Float64Array, b: Float64Array): boolean {
  for (const e of layout.plan) {
    if (!e.numeric) continue;
    for (let i = e.at; i < e.at + e.n; i++) if (a[i] !== b[i]) return false;
  }
  return true;
}

/**
 * `a` becomes the merge of `a` and `b` (both numbers of sketches with `layout`), as
 * `mergeFeatureSetSketches(a, b)` computes it. Returns false, leaving `a` untouched, when their edges
 * differ (the objects' merge throws `edges_mismatch` there).
 */
export function mergeSketchNumbers(layout: SketchNumbersLayout, a: Float64Array, b: Float64Array): boolean {
  if (!sameSketchEdges(layout, a, b)) return false;
  for (let i = 0; i < QUALITY; i++) a[i] += b[i];
  for (const e of layout.plan) {
    if (!e.numeric) {
      // counts, other, nulls, count: sums.
      for (let i = e.at; i < e.at + e.n + 3; i++) a[i] += b[i];
      continue;
    }
    const E = e.n;
    // bins and sums (E + 1 each) follow the edges.
    for (let i = e.at + E; i < e.at + 3 * E + 2; i++) a[i] += b[i];
    const c = e.at + 3 * E + 2; // count, nulls, nans, outOfRange, min, max, mean, m2
    const ca = a[c];
    const cb = b[c];
    const n = ca + cb;
    if (ca === 0) {
      a[c + 6] = b[c + 6];
      a[c + 7] = b[c + 7];
    } else if (cb !== 0) {
      const delta = b[c + 6] - a[c + 6];
      const mean = a[c + 6] + (delta * cb) / n;
      const m2 = a[c + 7] + b[c + 7] + ((delta * delta * ca) / n) * cb;
      a[c + 6] = mean;
      a[c + 7] = m2;
    }
    a[c] = n;
    a[c + 1] += b[c + 1];
    a[c + 2] += b[c + 2];
    a[c + 3] += b[c + 3];
    // min/max: NaN stands for null (written as the NaN literal, the bits encodeSketch writes).
    const amin = a[c + 4];
    const bmin = b[c + 4];
    a[c + 4] = Number.isNaN(amin) ? (Number.isNaN(bmin) ? NaN : bmin) : Number.isNaN(bmin) ? amin : Math.min(amin, bmin);
    const amax = a[c + 5];
    const bmax = b[c + 5];
    a[c + 5] = Number.isNaN(amax) ? (Number.isNaN(bmax) ? NaN : bmax) : Number.isNaN(bmax) ? amax : Math.max(amax, bmax);
  }
  return true;
}
