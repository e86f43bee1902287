/**
 * Per-image input features for drift monitoring, computed from the raw 8-bit pixels the agent's
 * preprocessing already decoded and resized (`sharp().raw()`), not with `sharp().stats()`, which
 * costs ~14 ms per image (DESIGN.md). Two tight loops over the pixels; timings in DRIFT.md.
 *
 * - `brightness` — mean luma, 0…255, luma = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, the weights
 *   OpenCV's `cvtColor(RGB2GRAY)` uses). Grey images use the value as luma.
 * - `contrast` — population standard deviation of luma (RMS contrast).
 * - `sharpness` — variance of the 4-neighbour Laplacian `[0 1 0; 1 −4 1; 0 1 0]` of luma over
 *   interior pixels, the usual "variance of Laplacian" focus/blur measure (comparable to OpenCV's
 *   `cv2.Laplacian(grey, CV_64F).var()`, which also counts reflected border pixels; we skip them). Blurred or defocused
 *   cameras show up as a drop. 0 for images narrower or shorter than 3 pixels.
 * - `channelMeans` — mean of each channel, 0…255, in the order the pixels are stored (RGB(A)).
 * - `width`, `height`, `aspect` (= width / height) — of the pixels given.
 *
 * @example
 * const { data, info } = await sharp(buf).resize(224, 224).raw().toBuffer({ resolveWithObject: true });
 * const f = computeImageFeatures(data, info.width, info.height, info.channels as 1 | 3 | 4);
 * addRow(sketch, imageFeatureRow(f));
 */
import { SketchError } from './errors.ts';

export interface ImageFeatures {
  width: number;
  height: number;
  aspect: number;
  brightness: number;
  contrast: number;
  sharpness: number;
  channelMeans: number[];
}

// One luma buffer reused across calls: allocating 400 KB per 224×224 image would dominate the cost.
// Float64 because V8 reads doubles from it without a float32 conversion (as fast or faster, measured).
let scratch = new Float64Array(0);

// The passes are separate small functions with fixed strides: V8 optimises each tight loop on its
// own, which measured ~1.7× faster than one function with a per-pixel channel-count branch.

/** Pass 1 (colour): luma into `luma`, returns [ΣL, ΣL², ΣR, ΣG, ΣB, ΣA]. */
function lumaPassColour(px: Uint8Array | Uint8ClampedArray, n: number, stride: 3 | 4, luma: Float64Array): number[] {
  let sL = 0;
  let sL2 = 0;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  for (let i = 0, p = 0; i < n; i++, p += stride) {
    const r = px[p];
    const g = px[p + 1];
    const b = px[p + 2];
    s0 += r;
    s1 += g;
    s2 += b;
    const l = 0.299 * r + 0.587 * g + 0.114 * b;
    luma[i] = l;
    sL += l;
    sL2 += l * l;
  }
  let s3 = 0;
  if (stride === 4) for (let p = 3; p < n * 4; p += 4) s3 += px[p];
  return [sL, sL2, s0, s1, s2, s3];
}

/** Pass 1 (grey): the value is the luma. Returns [ΣL, ΣL²]. */
function lumaPassGrey(px: Uint8Array | Uint8ClampedArray, n: number, luma: Float64Array): number[] {
  let sL = 0;
  let sL2 = 0;
  for (let i = 0; i < n; i++) {
    const v = px[i];
    luma[i] = v;
    sL += v;
    sL2 += v * v;
  }
  return [sL, sL2];
}

/** Pass 2: variance of the 4-neighbour Laplacian over interior pixels. */
function laplacianVariance(luma: Float64Array, width: number, height: number): number {
  if (width < 3 || height < 3) return 0;
  let s = 0;
  let s2 = 0;
  for (let y = 1; y < height - 1; y++) {
    const end = y * width + width - 1;
    for (let i = y * width + 1; i < end; i++) {
      const lap = luma[i - width] + luma[i + width] + luma[i - 1] + luma[i + 1] - 4 * luma[i];
      s += lap;
      s2 += lap * lap;
    }
  }
  const m = (width - 2) * (height - 2);
  const mean = s / m;
  return Math.max(0, s2 / m - mean * mean);
}

/**
 * Computes the features of one interleaved image (`pixels.length === width * height * channels`).
 *
 * @example
 * computeImageFeatures(rgb, 224, 224, 3).sharpness // a drop means blur
 */
export function computeImageFeatures(pixels: Uint8Array | Uint8ClampedArray, width: number, height: number, channels: 1 | 3 | 4): ImageFeatures {
  if (channels !== 1 && channels !== 3 && channels !== 4) throw new SketchError('invalid_input', 'channels must be 1, 3 or 4');
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw new SketchError('invalid_input', 'width and height must be positive integers');
  const n = width * height;
  if (pixels.length !== n * channels) throw new SketchError('invalid_input', `expected ${n * channels} bytes, got ${pixels.length}`);
  if (scratch.length < n) scratch = new Float64Array(n);
  const luma = scratch;

  const sums = channels === 1 ? lumaPassGrey(pixels, n, luma) : lumaPassColour(pixels, n, channels, luma);
  const brightness = sums[0] / n;
  const contrast = Math.sqrt(Math.max(0, sums[1] / n - brightness * brightness));
  const channelMeans = channels === 1 ? [brightness] : sums.slice(2, 2 + channels).map((v) => v / n);
  return { width, height, aspect: width / height, brightness, contrast, sharpness: laplacianVariance(luma, width, height), channelMeans };
}

/**
 * Feature names `imageFeatureRow` produces for images with `channels` channels.
 *
 * @example
 * imageFeatureNames(1) // ['brightness', 'contrast', 'sharpness', 'mean_gray', 'width', 'height', 'aspect']
 */
export function imageFeatureNames(channels: 1 | 3 | 4): string[] {
  const means = channels === 1 ? ['mean_gray'] : channels === 3 ? ['mean_r', 'mean_g', 'mean_b'] : ['mean_r', 'mean_g', 'mean_b', 'mean_a'];
  return ['brightness', 'contrast', 'sharpness', ...means, 'width', 'height', 'aspect'];
}

/**
 * Flattens features into the row shape a `FeatureSetSketch` takes (names from `imageFeatureNames`).
 *
 * @example
 * addRow(sketch, imageFeatureRow(computeImageFeatures(px, w, h, 3)));
 */
export function imageFeatureRow(f: ImageFeatures): Record<string, number> {
  const names = imageFeatureNames(f.channelMeans.length as 1 | 3 | 4);
  const row: Record<string, number> = { brightness: f.brightness, contrast: f.contrast, sharpness: f.sharpness, width: f.width, height: f.height, aspect: f.aspect };
  f.channelMeans.forEach((m, i) => (row[names[3 + i]] = m));
  return row;
}
