/**
 * Synthetic images for the image demo model: 32×32 RGB pictures of one filled shape — circle,
 * square or triangle (0, 1, 2) — with random size, position, rotation (squares and triangles),
 * foreground and background colour (kept apart in luma so the shape is visible) and a little pixel
 * noise. Each picture is an SVG rendered by sharp (librsvg, anti-aliased); measured ≈ 0.6 ms per
 * image with renders overlapped, so 2,000 images take ~1.3 s and no hand-written rasteriser is needed.
 *
 * `brightnessShift` adds a constant to every channel (clamped), simulating a camera whose exposure
 * drifted: the drift the agent's image statistics (brightness) should catch.
 *
 * Pixels are stored HWC (what `sharp().raw()` gives and what PNG files hold); `toNchw` applies the
 * bundle's preprocessing (x / 255 − 0.5) / 0.5 and reorders to the model's NCHW input.
 *
 * @example
 * const data = await makeShapes({ n: 1500, seed: 1 });
 * const x = toNchw(data.pixels, data.n);             // Float32Array [n, 3, 32, 32]
 * await writeShapesFolder('demo/images', data);      // 00000.png … + labels.csv
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { Rng } from './random.ts';

export const SHAPE_LABELS = ['circle', 'square', 'triangle'] as const;
export type ShapeLabel = (typeof SHAPE_LABELS)[number];
export const IMAGE_SIZE = 32;
export const IMAGE_CHANNELS = 3;
const PIXELS = IMAGE_SIZE * IMAGE_SIZE * IMAGE_CHANNELS;

export interface ShapesOptions {
  n: number;
  seed: number;
  /** Added to every channel of every pixel, in 0…255 units (clamped). Default 0. */
  brightnessShift?: number;
  /** Standard deviation of per-pixel Gaussian noise, 0…255 units. Default 6. */
  noise?: number;
}

export interface ShapeDataset {
  n: number;
  /** n × 32 × 32 × 3 bytes, HWC per image, images back to back. */
  pixels: Uint8Array;
  /** Class index per image. */
  labels: Int32Array;
}

interface ShapeSpec {
  label: number;
  svg: string;
}

/** One random picture as SVG. Exported for tests and for anyone wanting to look at a sample. */
export function shapeSvg(rng: Rng, label: number): string {
  const S = IMAGE_SIZE;
  const [bg, fg] = colours(rng);
  const size = rng.uniform(6, 12); // circumradius-ish, px
  const angle = rng.uniform(0, 360);
  let body: string;
  let reach: number; // how far the drawn shape extends from its centre
  if (label === 0) {
    reach = size * 0.8;
  } else if (label === 1) {
    reach = size * 0.75 * Math.SQRT2;
  } else {
    reach = size;
  }
  const cx = rng.uniform(reach + 1, S - reach - 1);
  const cy = rng.uniform(reach + 1, S - reach - 1);
  const f = (v: number) => v.toFixed(2);
  if (label === 0) {
    body = `<circle cx="${f(cx)}" cy="${f(cy)}" r="${f(size * 0.8)}" fill="${fg}"/>`;
  } else if (label === 1) {
    const h = size * 0.75;
    // Squares turn at most 30° either way: a square turned 45° is a diamond, which is fine but rarer.
    const turn = (angle % 60) - 30;
    body = `<rect x="${f(cx - h)}" y="${f(cy - h)}" width="${f(2 * h)}" height="${f(2 * h)}" fill="${fg}" transform="rotate(${f(turn)} ${f(cx)} ${f(cy)})"/>`;
  } else {
    const pts = [0, 120, 240].map((d) => {
      const a = ((angle + d) * Math.PI) / 180;
      return `${f(cx + size * Math.cos(a))},${f(cy + size * Math.sin(a))}`;
    });
    body = `<polygon points="${pts.join(' ')}" fill="${fg}"/>`;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${S}" height="${S}" viewBox="0 0 ${S} ${S}"><rect width="${S}" height="${S}" fill="${bg}"/>${body}</svg>`;
}

/** Background and foreground colours at least 70 apart in luma, so every shape is visible. */
function colours(rng: Rng): [string, string] {
  const luma = (c: number[]) => 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
  const rand = () => [rng.int(256), rng.int(256), rng.int(256)];
  const bg = rand();
  let fg = rand();
  while (Math.abs(luma(fg) - luma(bg)) < 70) fg = rand();
  const css = (c: number[]) => `rgb(${c[0]},${c[1]},${c[2]})`;
  return [css(bg), css(fg)];
}

export async function makeShapes(opts: ShapesOptions): Promise<ShapeDataset> {
  const rng = new Rng(opts.seed);
  const specs: ShapeSpec[] = [];
  for (let i = 0; i < opts.n; i++) {
    const label = rng.int(3);
    specs.push({ label, svg: shapeSvg(rng, label) });
  }
  const pixels = new Uint8Array(opts.n * PIXELS);
  // Renders overlap on libuv's pool; bounded so thousands of images do not queue thousands of buffers.
  const CHUNK = 64;
  for (let start = 0; start < opts.n; start += CHUNK) {
    const chunk = specs.slice(start, start + CHUNK);
    const raws = await Promise.all(chunk.map((s) => renderSvg(s.svg)));
    raws.forEach((raw, k) => pixels.set(raw, (start + k) * PIXELS));
  }
  // Noise and brightness after rendering, from a separate stream so they never change the shapes.
  const noise = opts.noise ?? 6;
  const shift = opts.brightnessShift ?? 0;
  if (noise > 0 || shift !== 0) {
    const nrng = new Rng(rng.fork());
    for (let i = 0; i < pixels.length; i++) {
      const v = pixels[i] + shift + (noise > 0 ? nrng.normal(0, noise) : 0);
      pixels[i] = v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
    }
  }
  return { n: opts.n, pixels, labels: Int32Array.from(specs, (s) => s.label) };
}

async function renderSvg(svg: string): Promise<Buffer> {
  const { data, info } = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  if (info.width !== IMAGE_SIZE || info.height !== IMAGE_SIZE || info.channels !== IMAGE_CHANNELS) {
    throw new Error(`unexpected render ${info.width}x${info.height}x${info.channels}`);
  }
  return data;
}

/**
 * The model input for images [from, to): (x / 255 − 0.5) / 0.5 in NCHW order, the same numbers the
 * agent's preprocessing (bundle `image-demo`: scale 255, mean 0.5, std 0.5) produces.
 */
export function toNchw(pixels: Uint8Array, n: number, from = 0): Float32Array {
  const HW = IMAGE_SIZE * IMAGE_SIZE;
  const out = new Float32Array(n * PIXELS);
  for (let i = 0; i < n; i++) {
    const src = (from + i) * PIXELS;
    const dst = i * PIXELS;
    for (let p = 0; p < HW; p++) {
      for (let c = 0; c < IMAGE_CHANNELS; c++) out[dst + c * HW + p] = (pixels[src + p * 3 + c] / 255 - 0.5) / 0.5;
    }
  }
  return out;
}

/** A subset (e.g. a train/validation split) as its own dataset; copies. */
export function sliceShapes(data: ShapeDataset, from: number, to: number): ShapeDataset {
  return { n: to - from, pixels: data.pixels.slice(from * PIXELS, to * PIXELS), labels: data.labels.slice(from, to) };
}

/** Writes `00000.png`, … (lossless) and `labels.csv` with header `file,label` (label names). */
export async function writeShapesFolder(dir: string, data: ShapeDataset): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  const lines = ['file,label'];
  for (let i = 0; i < data.n; i++) {
    const file = `${String(i).padStart(5, '0')}.png`;
    const raw = data.pixels.subarray(i * PIXELS, (i + 1) * PIXELS);
    const png = await sharp(raw, { raw: { width: IMAGE_SIZE, height: IMAGE_SIZE, channels: IMAGE_CHANNELS } }).png().toBuffer();
    await writeFile(join(dir, file), png);
    files.push(file);
    lines.push(`${file},${SHAPE_LABELS[data.labels[i]]}`);
  }
  await writeFile(join(dir, 'labels.csv'), lines.join('\n') + '\n');
  return files;
}

/**
 * Reads a folder written by `writeShapesFolder` (or any folder with images and a `file,label` CSV;
 * images are resized to 32×32 with `fit: 'fill'` like the agent does).
 */
export async function readShapesFolder(dir: string): Promise<ShapeDataset> {
  const text = await readFile(join(dir, 'labels.csv'), 'utf8');
  const rows = text.split(/\r?\n/).filter((l) => l.trim() !== '').slice(1);
  const pixels = new Uint8Array(rows.length * PIXELS);
  const labels = new Int32Array(rows.length);
  for (const [i, line] of rows.entries()) {
    const [file, label] = line.split(',').map((s) => s.trim());
    const idx = SHAPE_LABELS.indexOf(label as ShapeLabel);
    if (idx < 0) throw new Error(`labels.csv line ${i + 2}: unknown label "${label}"`);
    labels[i] = idx;
    const raw = await sharp(join(dir, file)).resize(IMAGE_SIZE, IMAGE_SIZE, { fit: 'fill' }).removeAlpha().raw().toBuffer();
    pixels.set(raw, i * PIXELS);
  }
  return { n: rows.length, pixels, labels };
}
