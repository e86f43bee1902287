/**
 * Letterbox geometry (detectors): an image of `w × h` scaled by one factor to fit inside the model's
 * `W × H` keeping its aspect ratio, centred, the rest padded. Pure, so the agent's sharp decode, the
 * console's canvas decode and the detection postprocess (which maps boxes back) use the same numbers.
 *
 * scale = min(W / w, H / h); the scaled image is round(w · scale) × round(h · scale); the padding on
 * the left and top is the floor of half the slack (the odd pixel goes right / bottom). A box point
 * (x, y) in the model's pixels is ((x − left) / scale, (y − top) / scale) in the original image.
 *
 * @example
 * letterboxOf(640, 480, 64, 64) // { scale: 0.1, width: 64, height: 48, left: 0, top: 8 }
 */
export interface Letterbox {
  scale: number;
  /** Size of the scaled image inside the model's input. */
  width: number;
  height: number;
  /** Padding before it (left and top). */
  left: number;
  top: number;
}

export function letterboxOf(srcWidth: number, srcHeight: number, width: number, height: number): Letterbox {
  const scale = Math.min(width / srcWidth, height / srcHeight);
  const w = Math.min(width, Math.max(1, Math.round(srcWidth * scale)));
  const h = Math.min(height, Math.max(1, Math.round(srcHeight * scale)));
  return { scale, width: w, height: h, left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2) };
}

/** The padding's grey level when the definition sets none (YOLO exports are trained on 114). */
export const DEFAULT_LETTERBOX_PAD = 114;
