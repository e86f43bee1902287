/**
 * Encoded image → the 8-bit pixels a bundle's image preprocessing feeds the model, and those pixels →
 * the drift feature row. The ONE implementation of both: the agent's preprocessing
 * (agent/runtime/preprocess-image.ts) and input statistics (agent/monitoring/stats-sample.ts), and
 * the server's image reference profiles (server/drift/image-reference.ts) and evaluation datasets
 * all call it, so a reference computed on the server is bin-for-bin what a device sketches for the
 * same image (DRIFT.md, "Image references").
 *
 * Decode (sharp): resize to the spec's width × height with its fit (`inside` done as `contain`,
 * `outside` as `cover`, because the model needs exactly width × height), black padding, or
 * `letterbox` (firmware-bundles/letterbox.ts: scaled, centred, padded with the spec's grey), alpha
 * dropped, then sRGB (3 channels, RGB order even for `bgr` specs — the swap happens in the tensor) or
 * grey (`b-w`, 1 channel).
 *
 * @example
 * const px = await decodeImagePixels(def.preprocess, await readFile('cat.png'));
 * addRow(sketch, imagePixelsFeatureRow(px));
 */
import type Sharp from 'sharp';
import { computeImageFeatures, imageFeatureRow } from '../protocol/sketch/image-features.ts';
import type { ImagePreprocess } from './definition.ts';
import { DEFAULT_LETTERBOX_PAD, letterboxOf, type Letterbox } from './letterbox.ts';

/** The resized 8-bit pixels of one image, interleaved (HWC). */
export interface ImagePixels {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
  /** The image as received, before the resize (its size is a drift feature; the resized one is constant). */
  source?: { width: number; height: number };
  /** `letterbox` fit: where the image sits in the model's input (to map detections back). */
  letterbox?: Letterbox;
}

export type PixelSpec = Pick<ImagePreprocess, 'width' | 'height' | 'fit' | 'channels' | 'pad'>;

export interface DecodeOptions {
  /** Refuse images with more input pixels than this (decompression bombs); default 40 M. */
  maxInputPixels?: number;
}

// sharp (libvips) is loaded on the first image, not at start: it costs ≈ 17 MB RSS, which an agent
// serving a tabular bundle (or no bundle yet) should not pay (agent/README.md, "Memory").
let sharpLoading: Promise<typeof Sharp> | undefined;
const loadSharp = () => (sharpLoading ??= import('sharp').then((m) => m.default));

/** Decodes and resizes one image as the bundle's preprocessing does; throws a plain Error if libvips cannot. */
export async function decodeImagePixels(spec: PixelSpec, buf: Buffer | Uint8Array, options: DecodeOptions = {}): Promise<ImagePixels> {
  const sharp = await loadSharp();
  const gray = spec.channels === 'gray';
  const image = sharp(buf, { limitInputPixels: options.maxInputPixels ?? 40_000_000 });
  // The header only (no decode): the size as received.
  const meta = await image.metadata();
  let letterbox: Letterbox | undefined;
  if (spec.fit === 'letterbox') {
    if (!meta.width || !meta.height) throw new Error('the image does not say its size, which a letterbox needs');
    // Resized to the exact scaled size, then padded: the geometry the detection postprocess undoes.
    letterbox = letterboxOf(meta.width, meta.height, spec.width, spec.height);
    const g = spec.pad ?? DEFAULT_LETTERBOX_PAD;
    const lb = letterbox;
    image
      .resize(lb.width, lb.height, { fit: 'fill' })
      .extend({ left: lb.left, top: lb.top, right: spec.width - lb.width - lb.left, bottom: spec.height - lb.height - lb.top, background: { r: g, g, b: g } });
  } else {
    const fit = spec.fit === 'inside' ? 'contain' : spec.fit === 'outside' ? 'cover' : spec.fit;
    image.resize(spec.width, spec.height, { fit, background: { r: 0, g: 0, b: 0 } });
  }
  const { data, info } = await image
    .removeAlpha()
    .toColourspace(gray ? 'b-w' : 'srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  const channels = gray ? 1 : 3;
  if (info.width !== spec.width || info.height !== spec.height || info.channels !== channels) {
    throw new Error(`decoded to ${info.width}×${info.height}×${info.channels}, expected ${spec.width}×${spec.height}×${channels}`);
  }
  const source = meta.width && meta.height ? { width: meta.width, height: meta.height } : undefined;
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height, channels, ...(source && { source }), ...(letterbox && { letterbox }) };
}

/** The drift feature row of decoded pixels (`imageFeatureRow(computeImageFeatures(...))`). */
export function imagePixelsFeatureRow(p: ImagePixels): Record<string, number> {
  return imageFeatureRow(computeImageFeatures(p.data, p.width, p.height, p.channels, p.source));
}

/** Encoded image → its drift feature row, exactly as a device running a bundle with `spec` computes it. */
export async function imageFeatureRowOf(spec: PixelSpec, buf: Buffer | Uint8Array, options: DecodeOptions = {}): Promise<Record<string, number>> {
  return imagePixelsFeatureRow(await decodeImagePixels(spec, buf, options));
}
