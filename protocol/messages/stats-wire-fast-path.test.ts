// The check of a `sketchBase64` window on its bytes must never accept what validateStatsMessage
// refuses, and what it accepts must be what validateStatsMessage returns (the same fields, the same
// bytes, the same rows); its reference check must never pass a sketch checkSketchAgainstReference
// refuses. Checked on well-formed windows (where it must answer) and on thousands of seeded random
// edits of their numbers, headers and envelopes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addRow, createFeatureSetSketch, sketchLayout, type FeatureSetSketch, type SketchLayout } from '../sketch/feature-set-sketch.ts';
import { mulberry32 } from '../sketch/random.ts';
import { decodeSketch, encodeSketch, sketchNumbersLayout } from '../sketch/sketch-blob.ts';
import { checkSketchAgainstReference, validateStatsMessage } from './stats.ts';
import { fastWireStats, wireMatchesReference } from './stats-wire-fast-path.ts';

type Json = any;
const NOW = new Date('2025-06-01T12:00:00Z');
const DEVICE = 'dev_abcdef12';

const classification: SketchLayout = {
  features: { temp: { kind: 'numeric', edges: [0, 10, 20] }, site: { kind: 'categorical', categories: ['a', 'b'] }, '1': { kind: 'numeric', edges: [-1, 1] } },
  outputs: { task: 'classification', numClasses: 2 },
};
const regression: SketchLayout = { features: { x: { kind: 'numeric', edges: [0.5] } }, outputs: { task: 'regression', edges: [0, 100] } };
const noOutputs: SketchLayout = { features: { c: { kind: 'categorical', categories: [] } }, outputs: { task: 'none' } } as SketchLayout;

function sketchOf(layout: SketchLayout, rows: Array<[Parameters<typeof addRow>[1], Parameters<typeof addRow>[2]?]>): FeatureSetSketch {
  const s = createFeatureSetSketch(layout);
  for (const [r, o] of rows) addRow(s, r, o);
  return s;
}

const sketches = (): FeatureSetSketch[] => [
  sketchOf(classification, [
    [{ temp: 5, site: 'a', '1': 0 }, { predictedClass: 1, confidence: 0.8 }],
    [{ temp: 25, site: 'z', '1': 3 }, { predictedClass: 0, confidence: 0.6 }],
    [{ temp: 12.5, site: 'b', '1': -0.25 }, { predictedClass: 1, confidence: 0.99 }],
    [{ temp: null, site: null, '1': Number.NaN }],
  ]),
  sketchOf(regression, [[{ x: 0.1 }, { value: 42 }], [{ x: 7 }, { value: -3 }]]),
  sketchOf(noOutputs, []),
  sketchOf(classification, []),
];

const wire = (sketch: FeatureSetSketch | Buffer): Json => ({
  v: 1,
  deviceId: DEVICE,
  bundleId: 'bnd_1',
  model: { name: 'tab', version: 3 },
  windowStart: '2025-06-01T11:00:00Z',
  windowEnd: '2025-06-01T11:00:59.000+00:00',
  seq: 17,
  sketchBase64: (Buffer.isBuffer(sketch) ? sketch : encodeSketch(sketch)).toString('base64'),
});

const opts = { deviceId: DEVICE, now: NOW };

/** The fast answer must be null or exactly what the full check says; returns whether it answered. */
function agrees(raw: Json, what: string): boolean {
  const fast = fastWireStats(raw, opts);
  const full = validateStatsMessage(raw, opts);
  if (!fast) return false;
  assert.ok(full.ok, `the bytes check accepted what validateStatsMessage refuses (${full.ok || full.reason}): ${what}`);
  const { sketch, v: _v, ...fields } = full.message;
  const { bytes, layout, rows, ...fastFields } = fast;
  assert.deepStrictEqual(fastFields, fields);
  assert.equal(rows, sketch.quality.rows);
  assert.ok(full.sketchBytes && bytes.equals(full.sketchBytes));
  assert.equal(layout, sketchNumbersLayout(bytes));
  assert.deepStrictEqual(decodeSketch(bytes), sketch);
  return true;
}

const VALUES = [Number.NaN, Infinity, -Infinity, -1, 0, -0, 1, 2, 0.5, 1e308, 2 ** 53, 1e-12, 100];

describe('stats: the sketchBase64 check on bytes', () => {
  it('answers for well-formed windows, with the full check’s fields, bytes and rows', () => {
    for (const s of sketches()) assert.ok(agrees(wire(s), 'well formed'), 'declined a well-formed window');
  });

  it('never accepts what the full check refuses: 6,000 random edits of the numbers', () => {
    const rnd = mulberry32(4321);
    let accepted = 0;
    let declined = 0;
    const nonCanonicalNaN = new Float64Array(new BigUint64Array([0x7ff8000000000001n]).buffer)[0];
    for (let i = 0; i < 6000; i++) {
      const all = sketches();
      const bytes = encodeSketch(all[Math.floor(rnd() * all.length)]);
      const layout = sketchNumbersLayout(bytes);
      const nums = new Float64Array(bytes.buffer, bytes.byteOffset + layout.start, layout.count);
      const edits = 1 + Math.floor(rnd() * 2);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(rnd() * nums.length);
        const what = rnd();
        if (what < 0.1) nums[at] = nonCanonicalNaN;
        else if (what < 0.6) nums[at] = VALUES[Math.floor(rnd() * VALUES.length)];
        else nums[at] += [1, -1, 0.5, 1e-10, -1e-10][Math.floor(rnd() * 5)];
      }
      if (agrees(wire(bytes), `numbers edited (${i})`)) accepted++;
      else declined++;
    }
    // Both sides exercised: some edits keep a window valid (a nudged sum), most do not.
    assert.ok(accepted > 100 && declined > 3000, `accepted ${accepted}, declined ${declined}`);
  });

  it('never accepts what the full check refuses: envelopes, headers and base64 text', () => {
    const rnd = mulberry32(99);
    const good = wire(sketches()[0]);
    const dup = sketches()[0];
    dup.features.site = { ...(dup.features.site as Json), categories: ['a', 'a'] };
    const reversed = sketches()[0];
    reversed.features = Object.fromEntries(Object.entries(reversed.features).reverse());
    const cases: Array<[string, Json]> = [
      ['duplicate categories', wire(dup)],
      ['both forms', { ...good, sketch: sketches()[0] }],
      ['extra key', { ...good, extra: 1 }],
      ['device mismatch', { ...good, deviceId: 'dev_00000000' }],
      ['future window', { ...good, windowStart: '2025-06-01T12:10:00Z', windowEnd: '2025-06-01T12:10:59Z' }],
      ['window order', { ...good, windowEnd: good.windowStart }],
      ['truncated', { ...good, sketchBase64: good.sketchBase64.slice(0, -12) }],
      ['not base64', { ...good, sketchBase64: `!${good.sketchBase64.slice(1)}` }],
      ['bad magic', { ...good, sketchBase64: `A${good.sketchBase64.slice(1)}` }],
      ['v 2', { ...good, v: 2 }],
      ['seq -1', { ...good, seq: -1 }],
      ['model version 0', { ...good, model: { name: 'tab', version: 0 } }],
      ['not an object', [good]],
    ];
    for (const [what, raw] of cases) assert.equal(agrees(raw, what), false, `${what}: answered`);
    assert.ok(agrees(wire(reversed), 'features in another order'), 'features in another order are well formed');
    // Random envelope edits.
    const keys = Object.keys(good);
    for (let i = 0; i < 2000; i++) {
      const raw = { ...good, model: { ...good.model } };
      const key = keys[Math.floor(rnd() * keys.length)];
      const value = [...VALUES, null, '', 'x', 'dev_abcdef12', '2025-06-01T11:00:00Z', {}, [], true][Math.floor(rnd() * (VALUES.length + 8))];
      if (rnd() < 0.2) delete raw[key];
      else if (key === 'model' && rnd() < 0.5) raw.model.version = value;
      else raw[key] = value;
      agrees(raw, `envelope edit ${key}`);
    }
  });

  it('passes a sketch against a reference only where checkSketchAgainstReference does', () => {
    const references = (layout: SketchLayout): Array<[string, SketchLayout, boolean]> => {
      const copy = (): Json => structuredClone(layout);
      const out: Array<[string, SketchLayout, boolean]> = [['its own layout', layout, true]];
      const reordered = copy();
      reordered.features = Object.fromEntries(Object.entries(reordered.features).reverse());
      out.push(['its features in another order', reordered, true]);
      for (const [name, f] of Object.entries(layout.features)) {
        const missing = copy();
        delete missing.features[name];
        out.push([`without ${name}`, missing, false]);
        const other = copy();
        other.features[name] = f.kind === 'numeric' ? { kind: 'numeric', edges: [...f.edges.slice(0, -1), f.edges.at(-1)! + 1e-9] } : { kind: 'categorical', categories: [...f.categories, 'new'] };
        out.push([`${name} changed`, other, false]);
        const kind = copy();
        kind.features[name] = f.kind === 'numeric' ? { kind: 'categorical', categories: [] } : { kind: 'numeric', edges: [1] };
        out.push([`${name} of the other kind`, kind, false]);
      }
      const extra = copy();
      extra.features.zz = { kind: 'numeric', edges: [1] };
      out.push(['an extra feature', extra, false]);
      for (const outputs of [{ task: 'none' }, { task: 'classification', numClasses: 2 }, { task: 'classification', numClasses: 3 }, { task: 'regression', edges: [0, 100] }, { task: 'regression', edges: [0, 101] }]) {
        const o = copy();
        o.outputs = outputs;
        out.push([`outputs ${JSON.stringify(outputs)}`, o, JSON.stringify(outputs) === JSON.stringify(layout.outputs)]);
      }
      return out;
    };
    for (const s of sketches()) {
      const bytes = encodeSketch(s);
      const layout = sketchNumbersLayout(bytes);
      for (const [what, reference, matches] of references(sketchLayout(s))) {
        const onBytes = wireMatchesReference(bytes, layout, reference);
        const full = checkSketchAgainstReference(s, reference);
        assert.equal(full === null, matches, `${what}: the object check`);
        assert.equal(onBytes, matches, `${what}: the bytes check`);
      }
    }
  });
});
