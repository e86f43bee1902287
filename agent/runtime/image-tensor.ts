/**
 * Decoded 8-bit pixels → the model's float32 image tensor, as a bundle's image preprocessing says:
 * (pixel / scale − mean) / std per channel, RGB or BGR or grey, NCHW or NHWC, one image or a batch.
 * Pure (no sharp, no Node), so the agent (agent/runtime/preprocess-image.ts, after sharp decodes) and
 * the console's playground (after the browser's canvas decodes) build the tensor with the same code.
 *
 * @example
 * const { dims, data } = imageTensor(spec, [{ data: rgb, width: 32, height: 32, channels: 3 }]);
 * dims // [1, 3, 32, 32]
 */
import type { ImagePreprocess } from '../../firmware-bundles/definition.ts';
import type { ImagePixels } from '../../firmware-bundles/image-pixels.ts';
import { perChannel } from '../../firmware-bundles/seeded-inputs.ts';
import { RuntimeError } from './errors.ts';

export type ImageTensorSpec = Pick<ImagePreprocess, 'width' | 'height' | 'channels' | 'layout' | 'scale' | 'mean' | 'std'>;

export function imageTensor(spec: ImageTensorSpec, pixels: readonly ImagePixels[]): { dims: number[]; data: Float32Array } {
  const c = spec.channels === 'gray' ? 1 : 3;
  const { width: w, height: h } = spec;
  const luts = normalizationTables(spec, c);
  const plane = w * h;
  const data = new Float32Array(pixels.length * c * plane);
  // Output channel k reads pixel channel src[k]: BGR models get R and B swapped here.
  const src = spec.channels === 'bgr' ? [2, 1, 0] : [0, 1, 2];
  pixels.forEach((px, n) => {
    if (px.width !== w || px.height !== h || px.channels !== c) {
      throw new RuntimeError('BUNDLE_MISMATCH', `image ${n} is ${px.width}×${px.height}×${px.channels}, the bundle expects ${w}×${h}×${c}`);
    }
    const base = n * c * plane;
    const p = px.data;
    for (let k = 0; k < c; k++) {
      const lut = luts[k];
      const s = src[k];
      if (spec.layout === 'NCHW') {
        const o = base + k * plane;
        for (let i = 0; i < plane; i++) data[o + i] = lut[p[i * c + s]];
      } else {
        for (let i = 0; i < plane; i++) data[base + i * c + k] = lut[p[i * c + s]];
      }
    }
  });
  const dims = spec.layout === 'NCHW' ? [pixels.length, c, h, w] : [pixels.length, h, w, c];
  return { dims, data };
}

/**
 * One 256-entry table per output channel: value = (pixel / scale − mean) / std, computed exactly
 * as the formula reads (in doubles, then rounded to float32) — cheaper than the arithmetic per pixel
 * and identical to a reference implementation of the same formula.
 */
function normalizationTables(spec: ImageTensorSpec, c: number): Float32Array[] {
  let mean: number[];
  let std: number[];
  try {
    mean = perChannel(spec.mean, c, 'mean');
    std = perChannel(spec.std, c, 'std');
  } catch (err) {
    throw new RuntimeError('BUNDLE_MISMATCH', `image preprocessing: ${(err as Error).message}`);
  }
  return Array.from({ length: c }, (_, k) => Float32Array.from({ length: 256 }, (_, v) => (v / spec.scale - mean[k]) / std[k]));
}
