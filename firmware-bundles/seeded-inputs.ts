/**
 * Deterministic smoke-test inputs that match a preprocess spec, so the same definition and model
 * always produce the same bundle.json (reproducible builds, stable hashes).
 *
 * Values are what the agent's preprocessing would hand the model: tabular features drawn inside the
 * reference bin range when one is known (standard normal otherwise); images as random 8-bit pixels
 * pushed through the spec's scale/mean/std. Floats are rounded to float32 so the recorded input is
 * exactly what the model saw.
 *
 * @example
 * const { dims, data } = seededInput(def.preprocess, { seed: 1, tensorType: 'float32', bins: def.reference.bins });
 */
import type { ImagePreprocess, SingleInputPreprocess, TabularPreprocess } from './definition.ts';
import { mulberry32 } from '../protocol/sketch/random.ts';

/** Tensor element types the generator can fill. */
export type InputTensorType = 'float32' | 'float64' | 'int32' | 'int64';

/** Options of `seededInput`. */
export interface SeededInputOptions {
  seed: number;
  tensorType: InputTensorType;
  /** Reference bin edges by feature name; a feature with edges is sampled within them. */
  bins?: Record<string, number[]>;
}


/**
 * The dims of the single input tensor a preprocess spec produces (batch of 1).
 *
 * @example
 * inputDims({ type: 'tabular', input: 'features', features }) // [1, features.length]
 */
export function inputDims(pre: SingleInputPreprocess): number[] {
  if (pre.type === 'tabular') return [1, pre.features.length];
  const c = channelCount(pre);
  return pre.layout === 'NCHW' ? [1, c, pre.height, pre.width] : [1, pre.height, pre.width, c];
}

/**
 * Number of channels an image spec yields.
 *
 * @example
 * channelCount({ ...spec, channels: 'gray' }) // 1
 */
export function channelCount(pre: ImagePreprocess): number {
  return pre.channels === 'gray' ? 1 : 3;
}

/**
 * One deterministic input tensor for a preprocess spec.
 *
 * @example
 * seededInput(imageSpec, { seed: 7, tensorType: 'float32' }) // { dims: [1, 3, 32, 32], data: [...3072 numbers] }
 */
export function seededInput(pre: SingleInputPreprocess, opts: SeededInputOptions): { dims: number[]; data: number[] } {
  const rand = mulberry32(opts.seed);
  const round = rounder(opts.tensorType);
  const data = pre.type === 'tabular' ? tabularRow(pre, rand, opts.bins ?? {}) : imagePixels(pre, rand);
  return { dims: inputDims(pre), data: data.map(round) };
}

function tabularRow(pre: TabularPreprocess, rand: () => number, bins: Record<string, number[]>): number[] {
  return pre.features.map((f) => {
    if (f.dtype === 'categorical') return Math.floor(rand() * Math.max(1, f.categories?.length ?? 5));
    const edges = bins[f.name];
    const value = edges && edges.length >= 2 ? edges[0] + rand() * (edges[edges.length - 1] - edges[0]) : gaussian(rand);
    return f.dtype === 'int64' ? Math.round(value) : value;
  });
}

function imagePixels(pre: ImagePreprocess, rand: () => number): number[] {
  const c = channelCount(pre);
  const mean = perChannel(pre.mean, c, 'mean');
  const std = perChannel(pre.std, c, 'std');
  const n = pre.width * pre.height;
  const data = new Array<number>(n * c);
  for (let p = 0; p < n; p++) {
    for (let ch = 0; ch < c; ch++) {
      const pixel = Math.floor(rand() * 256);
      const value = (pixel / pre.scale - mean[ch]) / std[ch];
      data[pre.layout === 'NCHW' ? ch * n + p : p * c + ch] = value;
    }
  }
  return data;
}

/**
 * Mean/std per channel: one value per channel, or a single value for all of them. Gray images
 * accept a 3-value list only if the values agree (the schema's default is [0, 0, 0]).
 *
 * @example
 * perChannel([0.5], 3, 'mean') // [0.5, 0.5, 0.5]
 */
export function perChannel(values: number[], channels: number, what: string): number[] {
  if (values.length === channels) return values;
  if (values.length === 1 || (channels === 1 && values.every((v) => v === values[0]))) return Array(channels).fill(values[0]);
  throw new RangeError(`${what} has ${values.length} values for ${channels} channel(s)`);
}

// Box–Muller: a standard normal sample from two uniforms.
function gaussian(rand: () => number): number {
  const u = 1 - rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

function rounder(type: InputTensorType): (v: number) => number {
  if (type === 'float32') return Math.fround;
  if (type === 'float64') return (v) => v;
  return Math.round;
}

/** One seeded PRNG for the whole project: smoke inputs must be reproducible from their seed. */
export { mulberry32 };
