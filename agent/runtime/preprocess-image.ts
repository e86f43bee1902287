/**
 * Image preprocessing with sharp: encoded bytes (JPEG, PNG, WebP, … whatever libvips decodes) →
 * resize to the spec's width × height → RGB or grey 8-bit pixels → (pixel / scale − mean) / std per
 * channel → float32 NCHW or NHWC, one image or a batch (the tensor step is `image-tensor.ts`, shared
 * with the console's playground).
 *
 * It also returns the resized 8-bit pixels, because the input statistics compute image features
 * (brightness, contrast, sharpness, channel means) from them rather than with `sharp().stats()`,
 * which costs ~14 ms per image (DESIGN.md). Pixels are interleaved, in RGB order for `rgb` and
 * `bgr` specs (the BGR swap happens only in the tensor) and one grey channel for `gray`.
 *
 * Fit: `fill`, `cover` and `contain` are sharp's. The model needs exactly width × height, which
 * sharp's `inside` / `outside` do not produce, so `inside` is done as `contain` (letterbox, black
 * padding) and `outside` as `cover` (centre crop), the same images scaled the same way.
 * Alpha is dropped (as PIL's `convert('RGB')` does), not blended.
 *
 * @example
 * const r = await preprocessImage(spec, await readFile('cat.jpg'));
 * r.dims // [1, 3, 32, 32]; r.pixels[0] // { data: Uint8Array(3072), width: 32, height: 32, channels: 3 }
 */
import type { ImagePreprocess } from '../../firmware-bundles/definition.ts';
import { decodeImagePixels, type ImagePixels } from '../../firmware-bundles/image-pixels.ts';
import { invalidInput, RuntimeError } from './errors.ts';
import { imageTensor } from './image-tensor.ts';

/** Encoded image bytes; a string is taken as base64 (a `data:` URL prefix is allowed). */
export type ImageBytes = Uint8Array | ArrayBuffer | string;
export type ImageInput = ImageBytes | ReadonlyArray<ImageBytes>;

export type { ImagePixels };

export interface ImageResult {
  input: string;
  dims: number[];
  data: Float32Array;
  pixels: ImagePixels[];
  batch: boolean;
}

export interface ImageOptions {
  /** Refuse images with more input pixels than this (decompression bombs); default 40 M. */
  maxInputPixels?: number;
  /** Largest batch accepted (default 64 images). */
  maxImages?: number;
}

export async function preprocessImage(spec: ImagePreprocess, input: unknown, options: ImageOptions = {}): Promise<ImageResult> {
  const batch = Array.isArray(input);
  const images = (batch ? input : [input]) as unknown[];
  const maxImages = options.maxImages ?? 64;
  if (images.length === 0) throw invalidInput('image: the batch is empty');
  if (images.length > maxImages) throw invalidInput(`image: ${images.length} images, at most ${maxImages} per request`);
  const pixels = await Promise.all(images.map((img, i) => decode(spec, toBuffer(img, batch ? i : undefined), options, batch ? i : undefined)));
  const { dims, data } = imageTensor(spec, pixels);
  return { input: spec.input, dims, data, pixels, batch };
}

// The decode itself is shared with the server's image reference profiles (firmware-bundles/image-pixels.ts).
async function decode(spec: ImagePreprocess, buf: Buffer, options: ImageOptions, index: number | undefined): Promise<ImagePixels> {
  try {
    return await decodeImagePixels(spec, buf, { maxInputPixels: options.maxInputPixels });
  } catch (err) {
    const at = index === undefined ? '' : ` (image ${index})`;
    throw new RuntimeError('INVALID_IMAGE', `cannot decode the image${at}: ${firstLine((err as Error).message)}`, index === undefined ? undefined : { image: index });
  }
}

function toBuffer(img: unknown, index: number | undefined): Buffer {
  const at = index === undefined ? '' : ` ${index}`;
  if (img instanceof Uint8Array) return Buffer.from(img.buffer, img.byteOffset, img.byteLength);
  if (img instanceof ArrayBuffer) return Buffer.from(img);
  if (typeof img === 'string') {
    const b64 = img.startsWith('data:') ? img.slice(img.indexOf(',') + 1) : img;
    const buf = Buffer.from(b64, 'base64');
    if (buf.length === 0) throw new RuntimeError('INVALID_IMAGE', `image${at}: empty or not base64`);
    return buf;
  }
  throw invalidInput(`image${at} must be bytes (Uint8Array / Buffer / ArrayBuffer) or a base64 string, got ${img === null ? 'null' : typeof img}`);
}

// libvips repeats its warnings on several lines; the first says what is wrong.
function firstLine(message: string): string {
  return message.split('\n')[0];
}
