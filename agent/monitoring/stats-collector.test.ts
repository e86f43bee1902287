import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { BundleDefinition } from '../../firmware-bundles/definition.ts';
import { validateStatsMessage } from '../../protocol/messages/stats.ts';
import type { NumericSketch } from '../../protocol/sketch/numeric-sketch.ts';
import type { CategoricalSketch } from '../../protocol/sketch/categorical-sketch.ts';
import { computeImageFeatures, imageFeatureNames } from '../../protocol/sketch/image-features.ts';
import type { SketchLayout } from '../../protocol/sketch/feature-set-sketch.ts';
import type { PredictionEvent } from '../model-runtime.ts';
import { StatsCollector } from './stats-collector.ts';
import { statsLayoutOf } from './stats-layout.ts';
import { sampleOf } from './stats-sample.ts';
import { StatsWindows, type ClosedWindow, type StatsBundle } from './stats-windows.ts';

const logger = pino({ level: 'silent' });
const T0 = Date.parse('2030-01-01T10:00:00.000Z');

const LAYOUT: SketchLayout = {
  features: { x: { kind: 'numeric', edges: [0, 1, 2] }, y: { kind: 'numeric', edges: [0, 10] }, site: { kind: 'categorical', categories: ['north', 'south'] } },
  outputs: { task: 'classification', numClasses: 3 },
};

function tabularDefinition(reference: Record<string, unknown> = { layout: LAYOUT }) {
  return BundleDefinition.parse({
    name: 'tab',
    preprocess: { type: 'tabular', input: 'features', features: [{ name: 'x' }, { name: 'y' }, { name: 'site', dtype: 'categorical', categories: ['north', 'south'] }] },
    postprocess: { softmax: true, labels: ['a', 'b', 'c'], task: 'classification' },
    reference,
  });
}

function bundle(id: string, layout: SketchLayout = LAYOUT, version = 1): StatsBundle {
  return { id, model: { name: 'tab', version }, definition: tabularDefinition({ layout }), layout };
}

function event(o: Partial<PredictionEvent> & { input: PredictionEvent['input'] }, bundleId = 'bnd_1'): PredictionEvent {
  return { bundle: { id: bundleId, name: 'tab', model: { name: 'tab', version: 1 }, counter: 1, modelSha256: 'f'.repeat(64) }, ok: true, latencyMs: 1, ...o };
}

const top = (index: number, score: number) => [{ label: String(index), index, score }];

describe('stats windows', () => {
  test('rows by name, rows in feature order, category indices; outputs as class and confidence; the window validates', () => {
    const w = new StatsWindows(60_000);
    w.setBundle(bundle('bnd_1'), T0);
    const batch = event({ input: { features: [{ x: 0.5, y: 3, site: 'north' }, [1.5, 12, 1]] }, rows: [top(2, 0.9), top(0, 0.55)] });
    assert.equal(w.add(sampleOf(batch)!, T0 + 5000), 2);
    const closed = w.close(T0 + 60_000)!;
    assert.equal(closed.windowStart, '2030-01-01T10:00:00.000Z');
    assert.equal(closed.windowEnd, '2030-01-01T10:01:00.000Z');
    const x = closed.sketch.features.x as NumericSketch;
    assert.deepEqual(x.bins, [0, 1, 1, 0]);
    assert.equal((closed.sketch.features.y as NumericSketch).outOfRange, 1, '12 is past the last edge');
    assert.deepEqual((closed.sketch.features.site as CategoricalSketch).counts, [1, 1], 'index 1 is "south"');
    assert.deepEqual(closed.sketch.outputs.predictedClass!.counts, [1, 0, 1]);
    assert.equal(closed.sketch.outputs.confidence!.count, 2);
    const msg = { v: 1, deviceId: 'dev_abcdefgh1', bundleId: closed.bundleId, model: closed.model, windowStart: closed.windowStart, windowEnd: closed.windowEnd, seq: 0, sketch: closed.sketch };
    const check = validateStatsMessage(JSON.parse(JSON.stringify(msg)), { reference: LAYOUT, deviceId: 'dev_abcdefgh1', now: new Date(T0 + 61_000) });
    assert.ok(check.ok, JSON.stringify(check));
  });

  test('schema violations: missing, extra and wrongly typed fields, also from refused requests (no outputs)', () => {
    const w = new StatsWindows(60_000);
    w.setBundle(bundle('bnd_1'), T0);
    const refused = event({ ok: false, code: 'INVALID_INPUT', input: { features: [{ x: 1, site: 'north', extra1: 1, extra2: 2 }, { x: 'one', y: 2, site: 'south' }] } });
    assert.equal(w.add(sampleOf(refused)!, T0 + 1), 2);
    const s = w.close(T0 + 2)!.sketch;
    assert.deepEqual(s.quality.schemaViolations, { missing: 1, extra: 2, wrongType: 1 });
    assert.equal(s.quality.rows, 2);
    assert.equal(s.outputs.predictedClass!.count + s.outputs.predictedClass!.nulls, 0, 'no output for refused rows');
    // Other failures and raw-tensor requests carry nothing to sketch.
    assert.equal(sampleOf(event({ ok: false, code: 'INFERENCE_FAILED', input: { features: { x: 1 } } })), null);
    assert.equal(sampleOf(event({ input: { inputs: { features: { dims: [1, 3], data: [1, 2, 3] } } } })), null);
  });

  test('windows sit on the wall-clock grid; a swap cuts the window; samples of the old bundle are refused', () => {
    const w = new StatsWindows(10_000);
    assert.equal(w.add(sampleOf(event({ input: { features: { x: 1, y: 1, site: 'north' } } }))!, T0), -1, 'no bundle yet');
    w.setBundle(bundle('bnd_1'), T0);
    w.add(sampleOf(event({ input: { features: { x: 1, y: 1, site: 'north' } } }))!, T0 + 3_000);
    // Swap at +4.5 s: the first window ends there, the next (another bundle) starts there.
    const first = w.setBundle(bundle('bnd_2', LAYOUT, 2), T0 + 4_500)!;
    assert.equal(first.bundleId, 'bnd_1');
    assert.equal(first.windowEnd, new Date(T0 + 4_500).toISOString());
    assert.equal(w.add(sampleOf(event({ input: { features: { x: 1, y: 1, site: 'north' } } }, 'bnd_1'))!, T0 + 4_600), -1, 'in flight across the swap');
    assert.equal(w.add(sampleOf(event({ input: { features: { x: 1, y: 1, site: 'north' } } }, 'bnd_2'))!, T0 + 5_000), 1);
    const second = w.close(w.windowEndOf(T0 + 5_000))!;
    assert.equal(second.bundleId, 'bnd_2');
    assert.deepEqual(second.model, { name: 'tab', version: 2 });
    assert.equal(second.windowStart, new Date(T0 + 4_500).toISOString());
    assert.equal(second.windowEnd, new Date(T0 + 10_000).toISOString());
    assert.equal(w.close(T0 + 20_000), null, 'an empty window is not sent');
    // The same bundle again (a re-signed manifest) does not cut.
    w.add(sampleOf(event({ input: { features: { x: 1, y: 1, site: 'north' } } }, 'bnd_2'))!, T0 + 21_000);
    assert.equal(w.setBundle(bundle('bnd_2', LAYOUT, 2), T0 + 22_000), null);
    assert.equal(w.openRows, 1);
  });

  test('image samples: features from the decoded pixels, under the names image-features.ts gives them', () => {
    const names = imageFeatureNames(3);
    const layout: SketchLayout = { features: Object.fromEntries(names.map((n) => [n, { kind: 'numeric' as const, edges: [0, 1, 100, 1000] }])), outputs: { task: 'classification', numClasses: 3 } };
    const definition = BundleDefinition.parse({ name: 'img', preprocess: { type: 'image', input: 'image', width: 4, height: 4 }, postprocess: { labels: ['a', 'b', 'c'] }, reference: { layout } });
    const w = new StatsWindows(60_000);
    w.setBundle({ id: 'bnd_i', model: { name: 'img', version: 1 }, definition, layout }, T0);
    const data = Uint8Array.from({ length: 4 * 4 * 3 }, (_, i) => (i * 37) % 256);
    const e = event({ input: { image: new Uint8Array([1]) }, pixels: [{ data, width: 4, height: 4, channels: 3 }], rows: [top(1, 0.7)] }, 'bnd_i');
    assert.equal(w.add(sampleOf(e)!, T0 + 1), 1);
    const s = w.close(T0 + 2)!.sketch;
    assert.deepEqual(s.quality.schemaViolations, { missing: 0, extra: 0, wrongType: 0 }, 'every feature name matches the layout');
    const f = computeImageFeatures(data, 4, 4, 3);
    assert.equal((s.features.brightness as NumericSketch).mean, f.brightness);
    assert.equal((s.features.mean_g as NumericSketch).mean, f.channelMeans[1]);
    assert.equal((s.features.aspect as NumericSketch).mean, 1);
  });

  test('detector samples: per image the number of detections and their mean score, the best detection as the output', () => {
    const names = [...imageFeatureNames(3), 'detections', 'detection_score_mean'];
    const layout: SketchLayout = { features: Object.fromEntries(names.map((n) => [n, { kind: 'numeric' as const, edges: [0, 1, 2, 3] }])), outputs: { task: 'classification', numClasses: 2 } };
    const definition = BundleDefinition.parse({
      name: 'det',
      preprocess: { type: 'image', input: 'images', width: 4, height: 4, fit: 'letterbox' },
      postprocess: { task: 'detection', labels: ['a', 'b'], detection: { boxes: 'boxes', scores: 'scores' } },
      reference: { layout },
    });
    const w = new StatsWindows(60_000);
    w.setBundle({ id: 'bnd_d', model: { name: 'det', version: 1 }, definition, layout }, T0);
    const px = { data: new Uint8Array(48), width: 4, height: 4, channels: 3 as const };
    const box = (index: number, score: number) => ({ label: String(index), index, score, box: [0, 0, 1, 1] });
    // Three images: two detections (best class 1), none, one (class 0).
    const e = event({ input: { image: [new Uint8Array([1]), new Uint8Array([1]), new Uint8Array([1])] }, pixels: [px, px, px], rows: [[box(1, 0.75), box(0, 0.25)], [], [box(0, 0.5)]] }, 'bnd_d');
    assert.equal(w.add(sampleOf(e)!, T0 + 1), 3);
    const s = w.close(T0 + 2)!.sketch;
    assert.deepEqual(s.quality.schemaViolations, { missing: 0, extra: 0, wrongType: 0 });
    const count = s.features.detections as NumericSketch;
    assert.deepEqual([count.count, count.nulls, count.min, count.max, count.mean], [3, 0, 0, 2, 1]);
    const score = s.features.detection_score_mean as NumericSketch;
    assert.deepEqual([score.count, score.nulls, score.mean], [2, 1, 0.5], 'an image without detections has no score (null, not missing)');
    assert.deepEqual((s.outputs.predictedClass as CategoricalSketch).counts, [1, 1], 'top labels: class 1 once, class 0 once');
    assert.deepEqual([s.outputs.confidence!.count, s.outputs.confidence!.mean], [2, 0.625]);
  });

  test('layout: the shipped reference layout, else bins + label count, else none', () => {
    assert.deepEqual(statsLayoutOf(tabularDefinition()), LAYOUT);
    assert.deepEqual(statsLayoutOf(tabularDefinition({ bins: { x: [0, 1], bad: [2, 1] } })), { features: { x: { kind: 'numeric', edges: [0, 1] } }, outputs: { task: 'classification', numClasses: 3 } });
    const noLabels = BundleDefinition.parse({ name: 'r', preprocess: { type: 'tabular', input: 'f', features: [{ name: 'x' }] }, postprocess: { task: 'regression' } });
    assert.equal(statsLayoutOf(noLabels), null, 'no bins and a regression without edges: nothing to compare with');
  });
});

describe('StatsCollector', () => {
  test('the request path only queues; sketching happens in a later drain; a full queue drops and counts', async () => {
    const closed: ClosedWindow[] = [];
    const c = new StatsCollector({ windowS: 60, logger, emit: async (w) => void closed.push(w), maxQueued: 3, drainDelayMs: 5 });
    c.start();
    c.setBundle(bundle('bnd_1'));
    const one = () => event({ input: { features: [{ x: 1, y: 1, site: 'north' }, { x: 2, y: 2, site: 'south' }] }, rows: [top(0, 0.5), top(1, 0.5)] });
    for (let i = 0; i < 5; i++) c.record(one());
    assert.equal(c.queued, 3, 'queued, not sketched, during the request');
    assert.equal(c.rows, 0);
    assert.equal(c.dropped, 4, 'two requests of two rows refused');
    const deadline = Date.now() + 10_000;
    while (c.queued > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.equal(c.queued, 0);
    assert.equal(c.rows, 6);
    await c.stop();
    assert.equal(closed.length, 1, 'stop closes the window in progress');
    assert.equal(closed[0].sketch.quality.rows, 6);
  });

  test('the window closes on its timer at the grid boundary, with what was queued before it', async () => {
    const closed: ClosedWindow[] = [];
    const c = new StatsCollector({ windowS: 1, logger, emit: async (w) => void closed.push(w) });
    c.start();
    c.setBundle(bundle('bnd_1'));
    c.record(event({ input: { features: { x: 1, y: 1, site: 'north' } }, rows: [top(0, 0.9)] }));
    const deadline = Date.now() + 3000;
    while (closed.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await c.stop();
    assert.equal(closed.length, 1);
    assert.equal(Date.parse(closed[0].windowEnd) % 1000, 0, 'ends on a whole second');
    assert.equal(closed[0].sketch.quality.rows, 1);
  });
});
