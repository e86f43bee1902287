// `sketchBase64` (stats-wire.ts): a window in the binary form validates to the same message as in the
// object form and hands over the bytes it came in; a bad sketch in it is refused with the same reason
// code as in the object form; bytes encodeSketch would not have written are refused as `malformed`.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addRow, createFeatureSetSketch, type FeatureSetSketch, type SketchLayout } from '../sketch/feature-set-sketch.ts';
import { encodeSketch } from '../sketch/sketch-blob.ts';
import { validateStatsMessage, type StatsMessage } from './stats.ts';
import { toWireStats } from './stats-wire.ts';

const layout: SketchLayout = {
  features: { temp: { kind: 'numeric', edges: [0, 10, 20] }, site: { kind: 'categorical', categories: ['a', 'b'] }, idle: { kind: 'numeric', edges: [1] } },
  outputs: { task: 'classification', numClasses: 2 },
};
const NOW = new Date('2025-06-01T12:00:00Z');
const opts = { now: NOW, reference: layout };
type Num = Extract<FeatureSetSketch['features'][string], { kind: 'numeric' }>;

function message(): StatsMessage {
  const sketch = createFeatureSetSketch(layout);
  addRow(sketch, { temp: 5, site: 'a' }, { predictedClass: 1, confidence: 0.8 });
  addRow(sketch, { temp: 25, site: 'z' }, { predictedClass: 0, confidence: 0.6 });
  addRow(sketch, { temp: null, site: null });
  return { v: 1, deviceId: 'dev_abcdef12', bundleId: 'bnd_1', model: { name: 'tab', version: 3 }, windowStart: '2025-06-01T11:00:00Z', windowEnd: '2025-06-01T11:05:00Z', seq: 17, sketch: JSON.parse(JSON.stringify(sketch)) };
}
const wireJson = (m: StatsMessage) => JSON.parse(JSON.stringify(toWireStats(m)));
const withBytes = (bytes: Buffer) => ({ ...wireJson(message()), sketchBase64: bytes.toString('base64') });

/** The encoded sketch with its header text replaced (length field and padding fixed up). */
function withHeader(text: string): Buffer {
  const bytes = encodeSketch(message().sketch);
  const old = bytes.readUInt32LE(2);
  const start = Math.ceil((6 + old) / 8) * 8;
  const head = Buffer.alloc(Math.ceil((6 + Buffer.byteLength(text)) / 8) * 8);
  head[0] = bytes[0];
  head[1] = bytes[1];
  head.writeUInt32LE(Buffer.byteLength(text), 2);
  head.write(text, 6);
  return Buffer.concat([head, bytes.subarray(start)]);
}

describe('stats wire form (sketchBase64)', () => {
  it('validates to the same message as the object form, with the bytes it came in', () => {
    const m = message();
    const wire = wireJson(m);
    assert.equal(wire.sketch, undefined);
    const a = validateStatsMessage(JSON.parse(JSON.stringify(m)), opts);
    const b = validateStatsMessage(wire, opts);
    assert.ok(a.ok && b.ok);
    assert.deepStrictEqual(b.message, a.message);
    assert.equal(a.sketchBytes, undefined);
    assert.ok(b.sketchBytes!.equals(encodeSketch(a.message.sketch)), 'the bytes are what the server would have encoded');
  });

  const mutations: Array<[string, (s: FeatureSetSketch) => void]> = [
    ['negative_count', (s) => ((s.features.temp as Num).nulls = -1)],
    ['non_integer_count', (s) => ((s.features.temp as Num).bins[1] = 0.5)],
    ['count_mismatch', (s) => ((s.features.temp as Num).count += 1)],
    ['invalid_edges', (s) => ((s.features.temp as Num).edges[1] = -1)],
    ['min_gt_max', (s) => Object.assign(s.features.temp, { min: 30, max: 1 })],
    ['invalid_moments', (s) => ((s.features.temp as Num).mean = 99)],
    ['edges_mismatch', (s) => ((s.features.temp as Num).edges[2] = 21)],
    ['count_mismatch', (s) => (s.quality.rows += 1)],
  ];
  for (const [reason, mutate] of mutations) {
    it(`refuses a sketch with ${reason} for the same reason in both forms`, () => {
      const m = message();
      mutate(m.sketch);
      const a = validateStatsMessage(JSON.parse(JSON.stringify(m)), opts);
      const b = validateStatsMessage(wireJson(m), opts);
      assert.ok(!a.ok && !b.ok);
      assert.equal(a.reason, reason, a.message);
      assert.equal(b.reason, reason, b.message);
    });
  }

  it('refuses as malformed what encodeSketch would not have written, and both forms at once', () => {
    const good = encodeSketch(message().sketch);
    const header = good.toString('utf8', 6, 6 + good.readUInt32LE(2));
    assert.ok(validateStatsMessage(withBytes(withHeader(header)), opts).ok, 'the helper rebuilds the same bytes');
    const nonZeroPad = Buffer.from(good);
    const padAt = 6 + good.readUInt32LE(2);
    assert.ok(padAt % 8 !== 0, 'this header has padding');
    nonZeroPad[padAt] = 1;
    // The feature without values: its min (NaN for null) with other NaN bits.
    const otherNaN = Buffer.from(good);
    const nanAt = good.indexOf(Buffer.from(new Float64Array([NaN]).buffer));
    assert.ok(nanAt > 0);
    otherNaN[nanAt] = 1;
    const cases: Array<[string, unknown]> = [
      ['truncated', good.subarray(0, good.length - 8).toString('base64')],
      ['one number too many', Buffer.concat([good, Buffer.alloc(8)]).toString('base64')],
      ['header with a space', withHeader(header.replace('{"f":', '{"f": ')).toString('base64')],
      ['header in another key order', withHeader(header.replace(/^\{"f":(.*),"o":(.*)\}$/, '{"o":$2,"f":$1}')).toString('base64')],
      ['duplicate feature', withHeader(header.replace('["site"', '["temp"')).toString('base64')],
      ['non-zero padding', nonZeroPad.toString('base64')],
      ['non-canonical NaN', otherNaN.toString('base64')],
      ['not base64', 'a'.repeat(3) + '!'],
      ['a number', 42],
      ['not the magic byte', Buffer.concat([Buffer.from([0]), good.subarray(1)]).toString('base64')],
    ];
    for (const [what, sketchBase64] of cases) {
      const r = validateStatsMessage({ ...wireJson(message()), sketchBase64 }, opts);
      assert.ok(!r.ok, `${what}: refused`);
      assert.equal(r.reason, 'malformed', `${what}: ${r.message}`);
    }
    const both = { ...wireJson(message()), sketch: message().sketch };
    const r = validateStatsMessage(both, opts);
    assert.ok(!r.ok && r.reason === 'malformed', 'both forms at once');
  });
});
