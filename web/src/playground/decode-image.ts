// An image file → the 8-bit pixels a bundle's image preprocessing feeds the model, decoded and resized
// by the browser (createImageBitmap + canvas) with the bundle's fit: `fill` stretches, `cover` (and
// `outside`) crops the centre, `contain` (and `inside`) letterboxes on black, `letterbox` on the
// spec's grey with the detectors' rounding (firmware-bundles/letterbox.ts) — the same geometry as
// the agent's sharp decode (firmware-bundles/image-pixels.ts). The resampling filter differs
// (the browser's bilinear vs libvips' lanczos), so a resized image can differ by a few levels from the
// device's; an image already at the bundle's size decodes to the same pixels.
import type { ImagePreprocess } from '../../../firmware-bundles/definition.ts';
import type { ImagePixels } from '../../../firmware-bundles/image-pixels.ts';
import { DEFAULT_LETTERBOX_PAD, letterboxOf } from '../../../firmware-bundles/letterbox.ts';

export async function decodeImage(spec: Pick<ImagePreprocess, 'width' | 'height' | 'fit' | 'channels' | 'pad'>, file: Blob): Promise<ImagePixels> {
  const bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const { width: w, height: h } = spec;
  const canvas = new OffscreenCanvas(w, h);
  const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
  const pad = spec.fit === 'letterbox' ? (spec.pad ?? DEFAULT_LETTERBOX_PAD) : 0;
  ctx.fillStyle = `rgb(${pad}, ${pad}, ${pad})`;
  ctx.fillRect(0, 0, w, h);
  ctx.imageSmoothingQuality = 'high';
  const sx = w / bitmap.width;
  const sy = h / bitmap.height;
  if (spec.fit === 'fill') ctx.drawImage(bitmap, 0, 0, w, h);
  else if (spec.fit === 'letterbox') {
    const lb = letterboxOf(bitmap.width, bitmap.height, w, h);
    ctx.drawImage(bitmap, lb.left, lb.top, lb.width, lb.height);
  } else {
    const s = spec.fit === 'contain' || spec.fit === 'inside' ? Math.min(sx, sy) : Math.max(sx, sy);
    const dw = bitmap.width * s;
    const dh = bitmap.height * s;
    ctx.drawImage(bitmap, (w - dw) / 2, (h - dh) / 2, dw, dh);
  }
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, w, h).data;
  const channels = spec.channels === 'gray' ? 1 : 3;
  const data = new Uint8Array(w * h * channels);
  for (let i = 0; i < w * h; i++) {
    const r = rgba[i * 4];
    const g = rgba[i * 4 + 1];
    const b = rgba[i * 4 + 2];
    // The canvas composes translucent pixels over the black background (the agent drops alpha
    // instead; opaque images are alike); grey is Rec. 601 luma.
    if (channels === 1) data[i] = Math.round(0.299 * r + 0.587 * g + 0.114 * b);
    else data.set([r, g, b], i * 3);
  }
  return { data, width: w, height: h, channels };
}
