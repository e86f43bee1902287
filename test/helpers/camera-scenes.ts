// Pictures from a fixed camera, for image-drift tests that need an orientation: a shape from the demo
// generator (server/training/synthetic-shapes.ts) above a dark floor band (the bottom rows), so the
// picture has an "up". `turn` gives the same scenes as a mis-mounted camera would: rotated a quarter
// turn, or upside down (a vertical flip). A CNN trained with the project's trainer on the three
// orientations is the model that "reads which way up its input is", like a text-direction model.
import { exportCnnOnnx, trainCnn } from '../../server/training/cnn.ts';
import { IMAGE_CHANNELS, IMAGE_SIZE, makeShapes, type ShapeDataset } from '../../server/training/synthetic-shapes.ts';

export const ORIENTATIONS = ['upright', 'rotated', 'upside-down'] as const;
export type Orientation = (typeof ORIENTATIONS)[number];
const S = IMAGE_SIZE;
const C = IMAGE_CHANNELS;
const FLOOR_ROWS = 8;

/** Turns one HWC image: a quarter turn clockwise, or a vertical flip. */
function turn(src: Uint8Array, o: Orientation): Uint8Array {
  if (o === 'upright') return src;
  const out = new Uint8Array(src.length);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      // Where pixel (x, y) of the output comes from.
      const [sx, sy] = o === 'rotated' ? [y, S - 1 - x] : [x, S - 1 - y];
      out.set(src.subarray((sy * S + sx) * C, (sy * S + sx + 1) * C), (y * S + x) * C);
    }
  }
  return out;
}

/** n camera scenes (32×32 RGB, HWC back to back), each in the orientation `orient(i)` gives; labels are the orientation index. */
export async function cameraScenes(n: number, seed: number, orient: (i: number) => Orientation): Promise<ShapeDataset> {
  const shapes = await makeShapes({ n, seed });
  const per = S * S * C;
  const pixels = new Uint8Array(n * per);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const scene = shapes.pixels.slice(i * per, (i + 1) * per);
    for (let p = (S - FLOOR_ROWS) * S; p < S * S; p++) scene.fill(24, p * C, (p + 1) * C);
    const o = orient(i);
    pixels.set(turn(scene, o), i * per);
    labels[i] = ORIENTATIONS.indexOf(o);
  }
  return { n, pixels, labels };
}

/** The orientation CNN (the demo's small architecture, no flip/turn augmentation: orientation is the label). */
export async function orientationModel(seed = 1): Promise<Uint8Array> {
  const train = await cameraScenes(450, seed, (i) => ORIENTATIONS[i % 3]);
  return exportCnnOnnx(trainCnn(train, { seed, epochs: 4, augment: false }));
}
