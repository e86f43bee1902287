// Detection postprocessing with exact values: IoU, class-wise NMS, thresholds, the box formats, and
// boxes mapped back through the letterbox to the original image.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { letterboxOf } from '../../firmware-bundles/letterbox.ts';
import { detect, iou, nms, unletterbox } from './detection.ts';
import { postprocess } from './postprocess.ts';

const spec = { boxes: 'boxes', scores: 'scores', format: 'xyxy' as const, scoreThreshold: 0.25, iouThreshold: 0.5, maxDetections: 100 };
const tensor = (dims: number[], values: number[]) => ({ type: 'float32', dims, data: Float32Array.from(values) });

describe('detection postprocessing', () => {
  test('IoU of xyxy boxes', () => {
    assert.equal(iou([0, 0, 10, 10], [0, 0, 10, 10]), 1);
    assert.equal(iou([0, 0, 10, 10], [5, 0, 15, 10]), 50 / 150);
    assert.equal(iou([0, 0, 10, 10], [10, 0, 20, 10]), 0, 'touching boxes do not overlap');
    assert.equal(iou([0, 0, 0, 10], [0, 0, 0, 10]), 0, 'empty boxes');
  });

  test('NMS is greedy by score and class-wise; ties keep the lower index', () => {
    const c = [
      { box: [0, 0, 10, 10], score: 0.8, cls: 0 },
      { box: [1, 0, 11, 10], score: 0.9, cls: 0 }, // IoU with #0 = 90/110 = 0.818: suppresses it
      { box: [1, 0, 11, 10], score: 0.7, cls: 1 }, // same place, other class: kept
      { box: [5, 0, 15, 10], score: 0.6, cls: 0 }, // IoU with #1 = 60/140 = 0.43 ≤ 0.5: kept
      { box: [20, 20, 30, 30], score: 0.6, cls: 0 }, // same score as #3: after it (higher index)
    ];
    assert.deepEqual(nms(c, 0.5), [1, 2, 3, 4]);
    assert.deepEqual(nms(c, 0.4), [1, 2, 4], 'at 0.4 the 0.43 overlap suppresses #3');
    assert.deepEqual(nms(c, 0.5, 2), [1, 2], 'max detections');
  });

  test('letterbox geometry and boxes mapped back to the original image (clipped to it)', () => {
    const lb = letterboxOf(640, 480, 64, 64);
    assert.deepEqual(lb, { scale: 0.1, width: 64, height: 48, left: 0, top: 8 });
    assert.deepEqual(letterboxOf(50, 100, 64, 64), { scale: 0.64, width: 32, height: 64, left: 16, top: 0 });
    assert.deepEqual(letterboxOf(33, 10, 64, 64), { scale: 64 / 33, width: 64, height: 19, left: 0, top: 22 });
    // (x − left) / scale, (y − top) / scale.
    assert.deepEqual(unletterbox([8, 16, 32, 40], { letterbox: lb, source: { width: 640, height: 480 } }), [80, 80, 320, 320]);
    assert.deepEqual(unletterbox([-4, 4, 70, 60], { letterbox: lb, source: { width: 640, height: 480 } }), [0, 0, 640, 480], 'boxes into the padding are clipped to the image');
    assert.deepEqual(unletterbox([16, 0, 48, 32], { letterbox: letterboxOf(50, 100, 64, 64), source: { width: 50, height: 100 } }), [0, 0, 50, 50]);
    assert.deepEqual(unletterbox([1, 2, 3, 4], {}), [1, 2, 3, 4], 'no letterbox: the model input\'s pixels');
  });

  test('detect: best class per box, score threshold, NMS, cxcywh decoded, mapped per image, labels', () => {
    // Two images of 4 boxes, 2 classes.
    const boxes = tensor([2, 4, 4], [
      ...[32, 32, 16, 16], ...[33, 32, 16, 16], ...[10, 10, 4, 4], ...[50, 50, 8, 8],
      ...[20, 20, 10, 10], ...[0, 0, 0, 0], ...[0, 0, 0, 0], ...[0, 0, 0, 0],
    ]);
    const scores = tensor([2, 4, 2], [
      ...[0.9, 0.1], ...[0.8, 0.3], ...[0.2, 0.24], ...[0.1, 0.5],
      ...[0.3, 0.3], ...[0.1, 0.1], ...[NaN, 0], ...[0, 0],
    ]);
    const placements = [{ letterbox: letterboxOf(640, 480, 64, 64), source: { width: 640, height: 480 } }, {}];
    const out = detect({ boxes, scores }, { ...spec, format: 'cxcywh' }, ['person', 'dog'], placements);
    assert.deepEqual(out, [
      [
        // [24, 24, 40, 40] → ((x − 0) / 0.1, (y − 8) / 0.1); box 1 (IoU 15·16 / (2·256 − 240) = 0.88) suppressed; box 2 under 0.25.
        { box: [240, 160, 400, 320], score: Math.fround(0.9), label: 'person', index: 0 },
        { box: [460, 380, 540, 460], score: Math.fround(0.5), label: 'dog', index: 1 },
      ],
      // A tie between classes takes the lower class; a NaN score is dropped.
      [{ box: [15, 15, 25, 25], score: Math.fround(0.3), label: 'person', index: 0 }],
    ]);
    // Through postprocess(), xyxy as is, no labels: the class index as the label.
    const one = postprocess({ boxes: tensor([1, 1, 4], [1, 2, 3, 4]), scores: tensor([1, 1, 1], [0.5]) }, { task: 'detection', softmax: false, topK: 1, detection: spec });
    assert.deepEqual(one, [[{ box: [1, 2, 3, 4], score: 0.5, label: '0', index: 0 }]]);
  });

  test('outputs of the wrong shape are a bundle mismatch naming the output', () => {
    assert.throws(() => detect({ boxes: tensor([1, 2, 5], new Array(10).fill(0)), scores: tensor([1, 2, 1], [0, 0]) }, spec, undefined, []), /output "boxes" is \[1, 2, 5\], expected \[batch, boxes, 4\]/);
    assert.throws(() => detect({ boxes: tensor([1, 2, 4], new Array(8).fill(0)), scores: tensor([1, 3, 1], [0, 0, 0]) }, spec, undefined, []), /output "scores" is \[1, 3, 1\], expected \[1, 2, classes\]/);
    assert.throws(() => detect({ boxes: tensor([1, 2, 4], new Array(8).fill(0)) }, spec, undefined, []), /no output "scores"/);
  });
});
