// The hand-written fast paths in front of the `stats` and `telemetry` schemas must never accept what
// the schema refuses, and what they accept must equal the schema's output (same values, same key
// order, unknown keys stripped). Checked on well-formed messages (where they must answer) and on
// thousands of seeded random mutations of them (wrong types, bad counts, extra and missing keys).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addRow, createFeatureSetSketch, type SketchLayout } from '../sketch/feature-set-sketch.ts';
import { createLatencyHistogram, recordLatency } from '../sketch/latency-histogram.ts';
import { mulberry32 } from '../sketch/random.ts';
import { fastStatsMessage } from './stats-fast-path.ts';
import { StatsMessage } from './stats.ts';
import { fastTelemetryMessage } from './telemetry-fast-path.ts';
import { TelemetryMessage } from './telemetry.ts';

type Json = any;

function statsMessage(layout: SketchLayout, rows: Array<[Parameters<typeof addRow>[1], Parameters<typeof addRow>[2]?]>): Json {
  const sketch = createFeatureSetSketch(layout);
  for (const [r, o] of rows) addRow(sketch, r, o);
  const raw = { v: 1, deviceId: 'dev_abcdef12', bundleId: 'bnd_1', model: { name: 'tab', version: 3 }, windowStart: '2025-06-01T11:00:00Z', windowEnd: '2025-06-01T11:00:59.000+00:00', seq: 17, sketch };
  return JSON.parse(JSON.stringify(raw));
}

const classification: SketchLayout = {
  features: { temp: { kind: 'numeric', edges: [0, 10, 20] }, site: { kind: 'categorical', categories: ['a', 'b'] }, '1': { kind: 'numeric', edges: [-1, 1] } },
  outputs: { task: 'classification', numClasses: 2 },
};
const regression: SketchLayout = { features: { x: { kind: 'numeric', edges: [0.5] } }, outputs: { task: 'regression', edges: [0, 100] } };
const noOutputs: SketchLayout = { features: { c: { kind: 'categorical', categories: [] } }, outputs: { task: 'none' } } as SketchLayout;

const statsSamples = (): Json[] => [
  statsMessage(classification, [
    [{ temp: 5, site: 'a', '1': 0 }, { predictedClass: 1, confidence: 0.8 }],
    [{ temp: 25, site: 'z', '1': 3 }, { predictedClass: 0, confidence: 0.6 }],
    [{ temp: null, site: null, '1': Number.NaN }],
  ]),
  statsMessage(regression, [[{ x: 0.1 }, { value: 42 }], [{ x: 7 }, { value: -3 }]]),
  statsMessage(noOutputs, []),
  statsMessage(classification, []),
];

function telemetrySamples(): Json[] {
  const latency = createLatencyHistogram();
  [1.5, 2.5, 40].forEach((ms) => recordLatency(latency, ms));
  const base = {
    v: 1,
    deviceId: 'dev_abcdef12',
    at: '2025-06-01T11:59:00.000Z',
    intervalS: 60,
    seq: 5,
    inferences: 3,
    errors: { timeout: 1, '7': 2 },
    latency,
    activeS: 12.5,
    queueDepth: 0,
    cpu: 0.12,
    rssBytes: 80_000_000,
    diskFreeBytes: 5_000_000_000,
    uptimeS: 3600,
    activeBundle: { id: 'bnd_1', counter: 4 },
    monitoring: { outboxPending: 3, outboxPendingBytes: 4096, outboxDropped: 2, outboxCorrupt: 1, statsDropped: 7 },
  };
  const { activeS: _a, monitoring: _m, ...older } = base;
  return [base, { ...older, errors: {}, latency: createLatencyHistogram(), activeBundle: null }].map((m) => JSON.parse(JSON.stringify(m)));
}

/** Every [parent, key] of the JSON tree, arrays included. */
function slots(v: Json, out: Array<[Json, string | number]> = []): Array<[Json, string | number]> {
  if (v && typeof v === 'object') {
    for (const k of Array.isArray(v) ? v.keys() : Object.keys(v)) {
      out.push([v, k]);
      slots(v[k], out);
    }
  }
  return out;
}

const WEIRD: Json[] = [-1, 0, 1, 2, 1.5, -0, 1e308, -1e308, 2 ** 53, 1e-12, null, '', 'x', '0', true, [], [0], {}, { kind: 'numeric' }, 'numeric', 'categorical', '2025-06-01T11:00:00Z', 'log10x10-v1'];

/** JSON text that tells -0 from 0. */
const snapshot = (v: Json) => JSON.stringify(v, (_k, x) => (Object.is(x, -0) ? '-0' : x));

/** One to three random edits: replace a value, delete a key, add a key, grow or shrink an array, nudge a number. */
function mutate(m: Json, rnd: () => number): void {
  const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)];
  const edits = 1 + Math.floor(rnd() * 3);
  for (let e = 0; e < edits; e++) {
    const all = slots(m);
    const [parent, key] = pick(all);
    const what = rnd();
    if (what < 0.45) parent[key] = pick(WEIRD);
    else if (what < 0.6 && !Array.isArray(parent)) delete parent[key];
    // defineProperty: an own `__proto__` key, as JSON.parse makes it
    else if (what < 0.7 && !Array.isArray(parent)) Object.defineProperty(parent, pick(['extra', '__proto__', 'kind', 'count', 'b']), { value: pick(WEIRD), enumerable: true, writable: true, configurable: true });
    else if (what < 0.8 && Array.isArray(parent)) (rnd() < 0.5 ? parent.push(pick(WEIRD)) : parent.pop());
    else if (typeof parent[key] === 'number') parent[key] = parent[key] + pick([1, -1, 0.5, 1e-10, -1e-10]);
    else parent[key] = pick(WEIRD);
  }
}

function checkAgainstSchema(name: string, samples: () => Json[], fast: (raw: unknown) => unknown, schema: { safeParse(raw: unknown): { success: boolean; data?: unknown } }) {
  it(`${name}: answers for well-formed messages, with exactly the schema's output`, () => {
    for (const m of samples()) {
      const f = fast(m);
      const z = schema.safeParse(m);
      assert.ok(z.success);
      assert.ok(f, 'the fast path declined a well-formed message');
      assert.deepStrictEqual(f, z.data);
      assert.equal(JSON.stringify(f), JSON.stringify(z.data));
    }
  });

  it(`${name}: never accepts what the schema refuses, and agrees with it on what it accepts (4,000 random mutations)`, () => {
    const rnd = mulberry32(1234);
    let accepted = 0;
    let declined = 0;
    for (let i = 0; i < 4000; i++) {
      const all = samples();
      const m = all[Math.floor(rnd() * all.length)];
      mutate(m, rnd);
      const before = snapshot(m);
      const z = schema.safeParse(m);
      const f = fast(m);
      assert.equal(snapshot(m), before, 'a check changed its input');
      if (f === null) {
        declined++;
        continue;
      }
      accepted++;
      assert.ok(z.success, `fast path accepted what the schema refuses: ${JSON.stringify(m).slice(0, 400)}`);
      assert.deepStrictEqual(f, z.data);
      assert.equal(JSON.stringify(f), JSON.stringify(z.data));
    }
    // Both sides exercised: some mutations keep a message valid (a nudged sum, an extra key), most do not.
    assert.ok(accepted > 50 && declined > 1000, `accepted ${accepted}, declined ${declined}`);
  });
}

describe('stats and telemetry fast paths', () => {
  checkAgainstSchema('stats', statsSamples, fastStatsMessage, StatsMessage);
  checkAgainstSchema('telemetry', telemetrySamples, fastTelemetryMessage, TelemetryMessage);

});
