/**
 * Keeps a `stats` window whose numeric moments overflowed. An agent from before
 * `MAX_SKETCH_MAGNITUDE` sketched every finite value, and one value ≳ 1.35e154 made a feature's
 * `m2` Infinity — `null` once serialised — so the whole window, every feature, was refused as
 * malformed. Here such a feature (moments or bin sums not finite numbers, or an extreme beyond the
 * bound) has all its values moved to `nans`: that feature loses this window's values and says so
 * in its quality counters, the other features and the window are kept.
 *
 * Runs on the raw payload before the schema, so anything else wrong is still refused with its reason.
 *
 * @example
 * const { payload, features } = salvageOverflowedMoments(JSON.parse(buf));
 * features; // ['temp'] — counted as nans in the stored window
 */
import { MAX_SKETCH_MAGNITUDE } from '../sketch/numeric-sketch.ts';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const fine = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
const inBound = (v: unknown) => v === null || (fine(v) && Math.abs(v as number) <= MAX_SKETCH_MAGNITUDE);

function overflowed(f: Obj): boolean {
  if (f.kind !== 'numeric' || typeof f.count !== 'number' || f.count <= 0 || !Array.isArray(f.sums) || !Array.isArray(f.bins)) return false;
  return !fine(f.mean) || !fine(f.m2) || f.sums.some((x) => !fine(x)) || !inBound(f.min) || !inBound(f.max);
}

/** The feature with every value counted as unusable; returns the counts it moved. */
function emptied(f: Obj): { sketch: Obj; moved: number; outOfRange: number } {
  const count = f.count as number;
  const bins = f.bins as unknown[];
  return {
    sketch: { ...f, bins: bins.map(() => 0), sums: bins.map(() => 0), count: 0, nans: (typeof f.nans === 'number' ? f.nans : 0) + count, outOfRange: 0, min: null, max: null, mean: 0, m2: 0 },
    moved: count,
    outOfRange: typeof f.outOfRange === 'number' ? f.outOfRange : 0,
  };
}

/**
 * A copy of `payload` with overflowed numeric features (inputs and outputs) emptied into `nans`,
 * and the names of those features; the payload itself when nothing overflowed.
 */
export function salvageOverflowedMoments(payload: unknown): { payload: unknown; features: string[] } {
  if (!isObj(payload) || !isObj(payload.sketch)) return { payload, features: [] };
  const sketch = payload.sketch;
  const names: string[] = [];
  let moved = 0;
  let outOfRange = 0;
  const fix = (group: unknown): unknown => {
    if (!isObj(group)) return group;
    let copy: Obj | null = null;
    for (const [name, f] of Object.entries(group)) {
      if (!isObj(f) || !overflowed(f)) continue;
      const e = emptied(f);
      copy ??= { ...group };
      copy[name] = e.sketch;
      names.push(name);
      moved += e.moved;
      outOfRange += e.outOfRange;
    }
    return copy ?? group;
  };
  const features = fix(sketch.features);
  const outputs = fix(sketch.outputs);
  if (names.length === 0) return { payload, features: [] };
  const q = isObj(sketch.quality) ? sketch.quality : {};
  const quality = {
    ...q,
    nans: (typeof q.nans === 'number' ? q.nans : 0) + moved,
    outOfRange: Math.max(0, (typeof q.outOfRange === 'number' ? q.outOfRange : 0) - outOfRange),
  };
  return { payload: { ...payload, sketch: { ...sketch, features, outputs, quality } }, features: names };
}
