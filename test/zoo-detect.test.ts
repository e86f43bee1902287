// Zoo entry 4 (issue 17): a YOLO-style detector with symbolic H and W through the whole loop on a real
// agent: push → facts → bundle build → deploy → images of different sizes through the local API,
// letterboxed to the size the definition sets → boxes checked against onnxruntime run directly on the
// same letterboxed tensor plus this file's own postprocess (threshold, class-wise NMS, letterbox
// undone) → detection statistics on the server with exact counts → optimize. Bad definitions are
// refused at build with a 422 naming the problem.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eq } from 'drizzle-orm';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { imageFeatureRowOf } from '../firmware-bundles/image-pixels.ts';
import type { CategoricalSketch } from '../protocol/sketch/categorical-sketch.ts';
import type { NumericSketch } from '../protocol/sketch/numeric-sketch.ts';
import { statsWindows } from '../server/db/schema.ts';
import { runCli } from './helpers/cli.ts';
import { startPlaneWithAgent, type PlaneWithAgent } from './helpers/plane-with-agent.ts';
import { close, direct, zooSteps } from './helpers/zoo-lab.ts';
import { detectorModel } from './helpers/zoo-models.ts';

const SIZE = 64;
const PAD = 114;
const LABELS = ['light', 'red'];
const DETECTION = { boxes: 'boxes', scores: 'scores', format: 'cxcywh', scoreThreshold: 0.5, iouThreshold: 0.3, maxDetections: 20 } as const;
const DEFINITION = {
  name: 'detector',
  preprocess: { type: 'image', input: 'images', width: SIZE, height: SIZE, fit: 'letterbox', pad: PAD, scale: 255 },
  postprocess: { task: 'detection', labels: LABELS, detection: DETECTION },
};

/** A dark image with coloured squares, `w × h`. */
function scene(w: number, h: number, squares: Array<{ x: number; y: number; s: number; rgb: [number, number, number] }>): Promise<Buffer> {
  const px = Buffer.alloc(w * h * 3, 20);
  for (const q of squares) for (let y = q.y; y < Math.min(h, q.y + q.s); y++) for (let x = q.x; x < Math.min(w, q.x + q.s); x++) px.set(q.rgb, (y * w + x) * 3);
  return sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

/** The letterbox written out here from its definition: scale to fit, centre, pad with PAD; NCHW, pixels / 255. */
async function letterboxed(png: Buffer) {
  const { width: w, height: h } = await sharp(png).metadata();
  const scale = Math.min(SIZE / w!, SIZE / h!);
  const [nw, nh] = [Math.round(w! * scale), Math.round(h! * scale)];
  const [left, top] = [Math.floor((SIZE - nw) / 2), Math.floor((SIZE - nh) / 2)];
  const raw = await sharp(png).resize(nw, nh, { fit: 'fill' }).extend({ left, top, right: SIZE - nw - left, bottom: SIZE - nh - top, background: { r: PAD, g: PAD, b: PAD } }).removeAlpha().raw().toBuffer();
  const data = new Float32Array(3 * SIZE * SIZE);
  for (let i = 0; i < SIZE * SIZE; i++) for (let c = 0; c < 3; c++) data[c * SIZE * SIZE + i] = raw[i * 3 + c] / 255;
  return { tensor: new ort.Tensor('float32', data, [1, 3, SIZE, SIZE]), scale, left, top, w: w!, h: h! };
}

/** This file's own postprocess of the model's outputs: what the agent must answer, and how many boxes passed the threshold. */
function expectedDetections(out: Record<string, number[]>, lb: { scale: number; left: number; top: number; w: number; h: number }) {
  const cands = [];
  for (let i = 0; i < out.boxes.length / 4; i++) {
    const [s0, s1] = [out.scores[i * 2], out.scores[i * 2 + 1]];
    const cls = s1 > s0 ? 1 : 0;
    const score = Math.max(s0, s1);
    if (score < DETECTION.scoreThreshold) continue;
    const [cx, cy, bw, bh] = out.boxes.slice(i * 4, i * 4 + 4);
    cands.push({ i, cls, score, b: [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2] });
  }
  cands.sort((a, b) => b.score - a.score || a.i - b.i);
  const overlap = (a: number[], b: number[]) => {
    const inter = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0])) * Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
  };
  const kept: typeof cands = [];
  for (const c of cands) if (kept.length < DETECTION.maxDetections && !kept.some((k) => k.cls === c.cls && overlap(k.b, c.b) > DETECTION.iouThreshold)) kept.push(c);
  const clip = (v: number, max: number) => Math.min(max, Math.max(0, v));
  const detections = kept.map((k) => ({
    box: [clip((k.b[0] - lb.left) / lb.scale, lb.w), clip((k.b[1] - lb.top) / lb.scale, lb.h), clip((k.b[2] - lb.left) / lb.scale, lb.w), clip((k.b[3] - lb.top) / lb.scale, lb.h)],
    score: k.score,
    label: LABELS[k.cls],
  }));
  return { detections, candidates: cands.length };
}

async function reference(png: Buffer) {
  const lb = await letterboxed(png);
  return expectedDetections(await direct(detectorModel(), { images: lb.tensor }), lb);
}

describe('model zoo: a detector with dynamic H × W, letterbox and NMS, through the whole loop', { timeout: 300_000 }, () => {
  let lab: PlaneWithAgent;
  const { cli, push, ship, statsReach, setReference, predict } = zooSteps(() => lab);

  before(async () => {
    lab = await startPlaneWithAgent({ site: 'zoo-detect', prefix: 'flotilla-zoo-detect-' });
  });
  after(async () => {
    await lab?.stop();
  });

  test('push → facts → build → deploy → boxes on images of three sizes equal onnxruntime + reference postprocess → detection statistics → optimize', async () => {
    await push('detector', detectorModel());
    const v = await cli('models', 'show', 'detector@1');
    assert.deepEqual(v.inputs, [{ name: 'images', dtype: 'float32', shape: [1, 3, 'H', 'W'] }]);
    assert.deepEqual(v.outputs.map((o: { name: string; shape: unknown[] }) => [o.name, o.shape]), [['boxes', [1, 'N', 4]], ['scores', [1, 'N', 2]]]);

    // A reference profile on the features the agent computes for a detector: image features of the
    // letterboxed pixels, the number of detections and their mean score, the best detection's class.
    const refRows = [];
    for (let i = 0; i < 24; i++) {
      const png = await scene(48 + (i % 5) * 16, 40 + (i % 3) * 24, [{ x: 4 + (i % 7) * 3, y: 6 + (i % 4) * 4, s: 14 + (i % 3) * 6, rgb: i % 2 ? [240, 30, 30] : [230, 230, 230] }]);
      const { detections } = await reference(png);
      const best = detections[0];
      refRows.push({
        ...(await imageFeatureRowOf({ width: SIZE, height: SIZE, fit: 'letterbox', channels: 'rgb', pad: PAD }, png)),
        detections: detections.length,
        detection_score_mean: detections.length ? detections.reduce((a, d) => a + d.score, 0) / detections.length : null,
        ...(best && { outputs: { predictedClass: LABELS.indexOf(best.label), confidence: best.score } }),
      });
    }
    await setReference('detector@1', refRows, 2);
    await ship('detector@1', DEFINITION);

    const images = [
      await scene(96, 64, [{ x: 10, y: 8, s: 24, rgb: [240, 30, 30] }, { x: 60, y: 30, s: 20, rgb: [230, 230, 230] }]), // wide: padded above and below
      await scene(40, 80, [{ x: 8, y: 40, s: 24, rgb: [230, 230, 230] }]), // tall: padded left and right
      await scene(64, 64, []), // nothing to detect
    ];
    const answered: Array<Array<{ box: number[]; score: number; label: string }>> = [];
    let suppressed = 0;
    for (const [n, png] of images.entries()) {
      const want = await reference(png);
      const r = await predict(png, { 'content-type': 'image/png' });
      assert.equal(r.detections.length, want.detections.length, `image ${n}: ${JSON.stringify(r.detections)} vs ${JSON.stringify(want.detections)}`);
      r.detections.forEach((d: { box: number[]; score: number; label: string }, i: number) => {
        assert.equal(d.label, want.detections[i].label, `image ${n} detection ${i}`);
        close([d.score], [want.detections[i].score], 1e-5, `image ${n} detection ${i} score`);
        close(d.box, want.detections[i].box, 1e-3, `image ${n} detection ${i} box`);
      });
      assert.deepEqual(r.results[0].predictions, r.detections, 'the same list as results[0].predictions');
      suppressed += want.candidates - want.detections.length;
      answered.push(r.detections);
    }
    assert.ok(answered[0].length >= 2 && answered[1].length >= 1 && answered[2].length === 0, JSON.stringify(answered));
    assert.ok(new Set(answered[0].map((d: { label: string }) => d.label)).size === 2, 'both classes on the wide image');
    assert.ok(suppressed > 0, 'NMS removed overlapping boxes');
    // The wide image's red square (10..34, 8..32 in its own pixels) is found where it is, not where the letterbox put it.
    const red = answered[0].find((d) => d.label === 'red')!;
    assert.ok(red.box[0] < 34 && red.box[2] > 10 && red.box[1] < 32 && red.box[3] > 8, JSON.stringify(red));

    // Statistics: one row per image, with the number of detections, their mean score and the best label.
    await statsReach('detector@1', images.length);
    const windows = await lab.cp.plane.db.select({ sketch: statsWindows.sketch }).from(statsWindows).where(eq(statsWindows.deviceId, lab.deviceId));
    const sum = (f: (s: (typeof windows)[number]['sketch']) => number) => windows.reduce((a, w) => a + f(w.sketch), 0);
    const counts = answered.map((d) => d.length);
    assert.equal(sum((s) => (s.features.detections as NumericSketch).count), 3);
    assert.equal(sum((s) => (s.features.detections as NumericSketch).sums.reduce((a, b) => a + b, 0)), counts[0] + counts[1] + counts[2]);
    assert.equal(sum((s) => (s.features.detection_score_mean as NumericSketch).nulls), 1, 'the empty image has no score');
    const top = [0, 1].map((c) => sum((s) => (s.outputs.predictedClass as CategoricalSketch | undefined)?.counts[c] ?? 0));
    assert.deepEqual(top, [0, 1].map((c) => answered.filter((d) => d[0] && LABELS.indexOf(d[0].label) === c).length), 'best labels');
    assert.deepEqual(windows.map((w) => w.sketch.quality.schemaViolations).reduce((a, q) => ({ missing: a.missing + q.missing, extra: a.extra + q.extra, wrongType: a.wrongType + q.wrongType })), { missing: 0, extra: 0, wrongType: 0 });

    // Optimize without a dataset is refused with the reason: the optimizer cannot invent H and W to
    // compare the variant on, and says what to give it.
    const opt = await runCli(['optimize', 'detector@1', '--quantize', 'int8'], lab.env);
    assert.notEqual(opt.code, 0);
    assert.match(opt.stderr, /input "images" has a symbolic dim after the batch axis \(\[batch, 3, \?, \?\]\): give an unlabelled dataset to compare on \(--eval <dataset@N>\)/, opt.stderr);
    assert.equal((await cli('models', 'versions', 'detector')).versions.length, 1, 'no variant registered');
  });

  test('bad definitions: a detection postprocess without its outputs, with a missing or misshapen output, or without a letterbox is refused at build with a 422 naming it', async () => {
    const build = (definition: unknown) => lab.cp.api('POST', '/api/v1/bundles', { json: { model: 'detector@1', definition } });
    const cases: Array<[unknown, string, RegExp]> = [
      [{ ...DEFINITION, postprocess: { task: 'detection', labels: LABELS } }, 'INVALID_DEFINITION', /needs "detection": \{ "boxes": …, "scores": … \}.*outputs: boxes, scores/],
      [{ ...DEFINITION, postprocess: { ...DEFINITION.postprocess, detection: { ...DETECTION, boxes: 'bbox' } } }, 'OUTPUT_NOT_IN_MODEL', /postprocess.detection.boxes "bbox" is not an output of the model \(outputs: boxes, scores\)/],
      [{ ...DEFINITION, postprocess: { ...DEFINITION.postprocess, detection: { ...DETECTION, boxes: 'scores' } } }, 'OUTPUT_SHAPE_MISMATCH', /postprocess.detection.boxes "scores" is \[1, N, 2\]: its last dim must be 4/],
      [{ ...DEFINITION, postprocess: { ...DEFINITION.postprocess, labels: ['a', 'b', 'c'] } }, 'LABELS_MISMATCH', /"scores" has 2 classes but 3 labels/],
      [{ ...DEFINITION, preprocess: { ...DEFINITION.preprocess, fit: 'fill' } }, 'INVALID_DEFINITION', /set preprocess to an image one with "fit": "letterbox"/],
    ];
    for (const [definition, reason, message] of cases) {
      const r = await build(definition);
      assert.equal(r.status, 422, JSON.stringify(r.body));
      assert.equal(r.body.error.details.reason, reason);
      assert.match(r.body.error.message, message);
    }
  });
});
