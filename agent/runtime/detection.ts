/**
 * Detection postprocessing: a detector's boxes [B, N, 4] and class scores [B, N, C] → per image the
 * detections `{ box: [x1, y1, x2, y2], score, label, index }` in the original image's pixels.
 *
 * Per image: each box takes its best class (ties: the lower class); boxes scoring under
 * `scoreThreshold` are dropped; class-wise greedy non-maximum suppression (highest score first, ties
 * the lower box index first) drops a box whose IoU with a kept box of the same class exceeds
 * `iouThreshold`; the best `maxDetections` are kept, highest score first. NMS runs in the model's
 * input pixels, then each box is mapped back through the image's letterbox
 * (firmware-bundles/letterbox.ts) and clipped to the image. Without a letterbox (raw `inputs`
 * requests) boxes stay in the model's input pixels.
 *
 * @example
 * detect({ boxes, scores }, { boxes: 'boxes', scores: 'scores', format: 'xyxy', scoreThreshold: 0.25, iouThreshold: 0.45, maxDetections: 100 }, ['cat'], [pixels])
 * // [[{ box: [12, 30.5, 80, 96], score: 0.91, label: 'cat', index: 0 }]]
 */
import type { DetectionPostprocess } from '../../firmware-bundles/definition.ts';
import type { Letterbox } from '../../firmware-bundles/letterbox.ts';
import { RuntimeError } from './errors.ts';
import type { HostTensor } from './tensor.ts';

export type Box = [number, number, number, number];

export interface Detection {
  box: Box;
  score: number;
  label: string;
  index: number;
}

/** Where an image sat in the model's input: its letterbox and its size as received. */
export interface ImagePlacement {
  letterbox?: Letterbox;
  source?: { width: number; height: number };
}

/** Intersection over union of two xyxy boxes (0 when either is empty). */
export function iou(a: readonly number[], b: readonly number[]): number {
  const iw = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const ih = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

/**
 * Greedy class-wise NMS: indices of the kept candidates, highest score first. A candidate is dropped
 * when its IoU with an already kept candidate of the same class is above `iouThreshold`.
 */
export function nms(candidates: ReadonlyArray<{ box: readonly number[]; score: number; cls: number }>, iouThreshold: number, maxKeep = Infinity): number[] {
  const order = candidates.map((_, i) => i).sort((a, b) => candidates[b].score - candidates[a].score || a - b);
  const kept: number[] = [];
  for (const i of order) {
    if (kept.length >= maxKeep) break;
    const c = candidates[i];
    if (kept.every((k) => candidates[k].cls !== c.cls || iou(candidates[k].box, c.box) <= iouThreshold)) kept.push(i);
  }
  return kept;
}

/** A box from the model's input pixels to the original image's (letterbox undone, clipped to the image). */
export function unletterbox(box: readonly number[], at: ImagePlacement): Box {
  const lb = at.letterbox;
  if (!lb) return [box[0], box[1], box[2], box[3]];
  const w = at.source?.width ?? Infinity;
  const h = at.source?.height ?? Infinity;
  const clip = (v: number, max: number) => Math.min(max, Math.max(0, v));
  return [clip((box[0] - lb.left) / lb.scale, w), clip((box[1] - lb.top) / lb.scale, h), clip((box[2] - lb.left) / lb.scale, w), clip((box[3] - lb.top) / lb.scale, h)];
}

export function detect(outputs: Record<string, HostTensor>, spec: DetectionPostprocess, labels: readonly string[] | undefined, images: readonly ImagePlacement[]): Detection[][] {
  const boxes = numericOutput(outputs, spec.boxes);
  const scores = numericOutput(outputs, spec.scores);
  const [bb, n, four] = boxes.dims;
  const [sb, sn, classes] = scores.dims;
  if (boxes.dims.length !== 3 || four !== 4) throw new RuntimeError('BUNDLE_MISMATCH', `detection: output "${spec.boxes}" is [${boxes.dims.join(', ')}], expected [batch, boxes, 4]`);
  if (scores.dims.length !== 3 || sb !== bb || sn !== n) throw new RuntimeError('BUNDLE_MISMATCH', `detection: output "${spec.scores}" is [${scores.dims.join(', ')}], expected [${bb}, ${n}, classes] to match "${spec.boxes}"`);
  const result: Detection[][] = [];
  for (let b = 0; b < bb; b++) {
    const candidates: Array<{ box: number[]; score: number; cls: number }> = [];
    for (let i = 0; i < n; i++) {
      const s = (b * n + i) * classes;
      let cls = 0;
      for (let c = 1; c < classes; c++) if (scores.data[s + c] > scores.data[s + cls]) cls = c;
      const score = scores.data[s + cls];
      if (!(score >= spec.scoreThreshold)) continue; // NaN scores are dropped too
      const o = (b * n + i) * 4;
      const [p, q, r, t] = [boxes.data[o], boxes.data[o + 1], boxes.data[o + 2], boxes.data[o + 3]];
      candidates.push({ box: spec.format === 'cxcywh' ? [p - r / 2, q - t / 2, p + r / 2, q + t / 2] : [p, q, r, t], score, cls });
    }
    const at = images[b] ?? {};
    result.push(
      nms(candidates, spec.iouThreshold, spec.maxDetections).map((k) => {
        const c = candidates[k];
        return { box: unletterbox(c.box, at), score: c.score, label: labels?.[c.cls] ?? String(c.cls), index: c.cls };
      }),
    );
  }
  return result;
}

function numericOutput(outputs: Record<string, HostTensor>, name: string): { dims: readonly number[]; data: Float64Array } {
  const t = outputs[name];
  if (!t) throw new RuntimeError('BUNDLE_MISMATCH', `detection: the model has no output "${name}" (outputs: ${Object.keys(outputs).join(', ')})`);
  if (Array.isArray(t.data)) throw new RuntimeError('BUNDLE_MISMATCH', `detection: output "${name}" holds strings, not numbers`);
  return { dims: t.dims, data: Float64Array.from(t.data as ArrayLike<number | bigint>, Number) };
}
