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
 * - `width`, `height`, `aspect` (= width / height) — of the image as received when the caller says
 *   (`source`), else of the pixels given (after a resize they are the model's input size, a constant).
 * - Structure, which mean and spread cannot see (an upside-down or rotated camera keeps brightness and
 *   sharpness): `top_bottom` and `left_right` (mean luma of the upper minus the lower half, of the left
 *   minus the right half), `center_x` and `center_y` (the centroid of |Laplacian|, 0…1: where the
 *   content's edges sit — a left-aligned text line turned upside down moves it right and up), and
 *   `edge_h_share` (horizontal gradient energy Σ|∂x| over Σ|∂x| + Σ|∂y|: a 90° rotation swaps the two).
 *   All over interior pixels, in the sharpness pass (cost per image in DRIFT.md).
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
  structure: ImageStructure;
}

/** Where the content of an image sits and which way its edges run (see the module comment). */
export interface ImageStructure {
  top_bottom: number;
  left_right: number;
  center_x: number;
  center_y: number;
  edge_h_share: number;
}

export const STRUCTURE_FEATURES = ['top_bottom', 'left_right', 'center_x', 'center_y', 'edge_h_share'] as const;

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

const FLAT: ImageStructure = { top_bottom: 0, left_right: 0, center_x: 0.5, center_y: 0.5, edge_h_share: 0.5 };
// +1 for a left-half column, −1 for a right-half one, 0 for the middle of an odd width (reused).
let side = new Float64Array(0);

/**
 * Pass 2, over interior pixels (one sweep, branch-free): the variance of the 4-neighbour Laplacian
 * (sharpness), and structure — halves of the luma, the centroid of |Laplacian| (where the content
 * sits), and forward differences by direction.
 */
function edgePass(luma: Float64Array, width: number, height: number): { sharpness: number; structure: ImageStructure } {
  if (width < 3 || height < 3) return { sharpness: 0, structure: FLAT };
  if (side.length !== width) {
    side = new Float64Array(width);
    const half = width >> 1;
    for (let x = 0; x < width; x++) side[x] = x < half ? 1 : x >= width - half ? -1 : 0;
  }
  let s = 0;
  let s2 = 0;
  let gx = 0;
  let gy = 0;
  let w = 0;
  let wx = 0;
  let wy = 0;
  let top = 0;
  let bottom = 0;
  let lr = 0;
  const halfY = (height - 2) >> 1;
  for (let y = 1; y < height - 1; y++) {
    const row = y * width;
    let rs = 0;
    let rw = 0;
    for (let x = 1; x < width - 1; x++) {
      const i = row + x;
      const l = luma[i];
      const right = luma[i + 1];
      const below = luma[i + width];
      const lap = luma[i - width] + below + luma[i - 1] + right - 4 * l;
      s += lap;
      s2 += lap * lap;
      const a = Math.abs(lap);
      rw += a;
      wx += a * x;
      gx += Math.abs(right - l);
      gy += Math.abs(below - l);
      rs += l;
      lr += l * side[x];
    }
    w += rw;
    wy += rw * y;
    if (y - 1 < halfY) top += rs;
    else if (y - 1 >= height - 2 - halfY) bottom += rs;
  }
  const m = (width - 2) * (height - 2);
  const mean = s / m;
  const perHalfRows = halfY * (width - 2);
  const perHalfCols = (width >> 1) - (width % 2 === 0 ? 1 : 0);
  return {
    sharpness: Math.max(0, s2 / m - mean * mean),
    structure: {
      top_bottom: perHalfRows ? (top - bottom) / perHalfRows : 0,
      left_right: perHalfCols > 0 ? lr / (perHalfCols * (height - 2)) : 0,
      // A flat image has no content to place: the middle.
      center_x: w > 0 ? wx / w / (width - 1) : 0.5,
      center_y: w > 0 ? wy / w / (height - 1) : 0.5,
      edge_h_share: gx + gy > 0 ? gx / (gx + gy) : 0.5,
    },
  };
}

/**
 * Computes the features of one interleaved image (`pixels.length === width * height * channels`).
 *
 * @example
 * computeImageFeatures(rgb, 224, 224, 3).sharpness // a drop means blur
 */
export function computeImageFeatures(pixels: Uint8Array | Uint8ClampedArray, width: number, height: number, channels: 1 | 3 | 4, source?: { width: number; height: number }): ImageFeatures {
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
  const w = source?.width ?? width;
  const h = source?.height ?? height;
  const { sharpness, structure } = edgePass(luma, width, height);
  return { width: w, height: h, aspect: w / h, brightness, contrast, sharpness, channelMeans, structure };
}

/**
 * Feature names `imageFeatureRow` produces for images with `channels` channels.
 *
 * @example
 * imageFeatureNames(1) // ['brightness', 'contrast', 'sharpness', 'mean_gray', 'width', 'height', 'aspect', 'top_bottom', …]
 */
export function imageFeatureNames(channels: 1 | 3 | 4): string[] {
  const means = channels === 1 ? ['mean_gray'] : channels === 3 ? ['mean_r', 'mean_g', 'mean_b'] : ['mean_r', 'mean_g', 'mean_b', 'mean_a'];
  return ['brightness', 'contrast', 'sharpness', ...means, 'width', 'height', 'aspect', ...STRUCTURE_FEATURES];
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
  for (const k of STRUCTURE_FEATURES) row[k] = f.structure[k];
  return row;
}
