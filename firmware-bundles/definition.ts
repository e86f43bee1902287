/**
 * The bundle definition: what an ML engineer writes in `firmware-bundles/<name>/bundle.json`,
 * and (resolved, with smoke vectors and reference edges filled in) what ships to devices as
 * the bundle's `bundle.json`.
 *
 * @example
 * const def = BundleDefinition.parse(JSON.parse(readFileSync('firmware-bundles/tabular-demo/bundle.json', 'utf8')));
 */
import { z } from 'zod';
import type { SketchLayout } from '../protocol/sketch/feature-set-sketch.ts';
import { BundleSessionOptions } from './bundle-session.ts';

export const TabularFeature = z.object({
  name: z.string().min(1),
  dtype: z.enum(['float32', 'int64', 'categorical']).default('float32'),
  /** For categorical features: the known categories, encoded as their index. */
  categories: z.array(z.string()).optional(),
});

export const TabularPreprocess = z.object({
  type: z.literal('tabular'),
  /** Name of the model input that receives the [batch, features] tensor. */
  input: z.string().min(1),
  features: z.array(TabularFeature).min(1),
});

export const ImagePreprocess = z.object({
  type: z.literal('image'),
  input: z.string().min(1),
  width: z.number().int().positive().max(4096),
  height: z.number().int().positive().max(4096),
  /**
   * sharp resize fit, or `letterbox` (detectors): scaled to fit inside width × height keeping the
   * aspect ratio, centred, the rest padded with `pad`; the agent records the scale and padding of
   * each image so a detection postprocess can map boxes back to the original image.
   */
  fit: z.enum(['fill', 'cover', 'contain', 'inside', 'outside', 'letterbox']).default('fill'),
  /** letterbox: the grey level (0–255) of the padding; default 114, as YOLO exports are trained with. */
  pad: z.number().int().min(0).max(255).optional(),
  channels: z.enum(['rgb', 'bgr', 'gray']).default('rgb'),
  layout: z.enum(['NCHW', 'NHWC']).default('NCHW'),
  /** Pixel values are divided by `scale`, then normalized with mean/std per channel. */
  scale: z.number().positive().default(255),
  mean: z.array(z.number()).default([0, 0, 0]),
  std: z.array(z.number().positive()).default([1, 1, 1]),
});

const Dims = z.array(z.number().int().nonnegative()).max(8);

/** A tensor the definition writes out: dims and flat row-major data (the model's element type applies). */
export const FixedTensor = z.object({ dims: Dims, data: z.array(z.number()).max(65_536) });

/** One drift feature of a tensor model: a statistic of one input's or output's values. */
export const TensorSummary = z.union([
  z.object({ input: z.string().min(1), stat: z.enum(['rms', 'mean', 'std', 'min', 'max', 'absmax']).default('mean') }).strict(),
  z.object({ output: z.string().min(1), stat: z.enum(['rms', 'mean', 'std', 'min', 'max', 'absmax']).default('mean') }).strict(),
]);

/**
 * Raw tensors for any model: callers name each model input (`{ inputs: { name: { dims, data } } }`);
 * the agent adds the inputs the definition pins (`fixed`) and the state it carries (`state`).
 * See tensor-spec.ts for how shapes are resolved and README "Bringing your own model".
 */
export const TensorPreprocess = z.object({
  type: z.literal('tensor'),
  /** Values of the model's symbolic dims (e.g. `{ "batch": 1, "N": 512 }`): generated smoke inputs use them. */
  dims: z.record(z.string().min(1), z.number().int().positive().max(1 << 20)).default({}),
  /** Inputs the agent feeds itself on every call, e.g. an int64 scalar sample rate `{ "sr": { "dims": [], "data": [16000] } }`. */
  fixed: z.record(z.string().min(1), FixedTensor).default({}),
  /**
   * Recurrent state: output `output` of one call is input `input` of the next call of the same session
   * (the request's `session` key); a new session (or a call without a key) starts from `initial`.
   * A caller that sends the state input itself carries the state on its own.
   */
  state: z
    .array(z.object({ input: z.string().min(1), output: z.string().min(1), initial: z.number().default(0) }))
    .max(16)
    .default([]),
  /** Value range of generated smoke inputs per input (default: standard normal for floats, 0..9 for integers). */
  ranges: z.record(z.string().min(1), z.tuple([z.number(), z.number()])).default({}),
  /**
   * The drift features of a tensor model: one number per request summarizing an input or output
   * tensor (e.g. `{ "frame_rms": { "input": "input", "stat": "rms" } }`); see tensor-summaries.ts.
   */
  summaries: z.record(z.string().min(1), TensorSummary).default({}),
  /**
   * Audio models: the local API also takes a WAV file (PCM16 or float32, mono, at `sampleRate`),
   * cut into `frameLength`-sample frames fed to `input` one after another (state carried between them).
   */
  audio: z.object({ input: z.string().min(1), sampleRate: z.number().int().positive().max(384_000), frameLength: z.number().int().positive().max(1 << 20) }).optional(),
});

export const Preprocess = z.discriminatedUnion('type', [TabularPreprocess, ImagePreprocess, TensorPreprocess]);

export const Postprocess = z.object({
  /** Model output holding scores/logits; defaults to the first output. */
  output: z.string().optional(),
  softmax: z.boolean().default(false),
  topK: z.number().int().positive().max(1000).default(1),
  /** Class labels, inline or a file next to the definition (one label per line). */
  labels: z.union([z.array(z.string()), z.string()]).optional(),
  /**
   * classification: top-K classes of a score row; regression: the output's values; binary: one
   * probability per row against `threshold`, labelled `labels[1]` at or above it and `labels[0]`
   * below (default "negative"/"positive"); outputs: no predictions, the named outputs as they are;
   * detection: per image the boxes left after thresholding and NMS (`detection` says how).
   */
  task: z.enum(['classification', 'regression', 'binary', 'outputs', 'detection']).default('classification'),
  /** binary: the decision threshold on the probability. */
  threshold: z.number().default(0.5),
  /** outputs: which outputs the answer returns (default all; state outputs carried by the agent are hidden). */
  outputs: z.array(z.string().min(1)).optional(),
  /** detection: which outputs hold the boxes and the class scores, and how to filter them (see agent/runtime/detection.ts). */
  detection: z.lazy(() => DetectionPostprocess).optional(),
});

/**
 * A detector's outputs and filtering: `boxes` [1, N, 4] in the model's input pixels (`xyxy`, or
 * `cxcywh` as YOLO heads write them) and `scores` [1, N, C] per class (already probabilities); each
 * box takes its best class, boxes under `scoreThreshold` are dropped, class-wise non-maximum
 * suppression at `iouThreshold` removes overlaps, the best `maxDetections` are kept, and boxes are
 * mapped back through the letterbox to the original image's pixels.
 */
export const DetectionPostprocess = z.object({
  boxes: z.string().min(1),
  scores: z.string().min(1),
  format: z.enum(['xyxy', 'cxcywh']).default('xyxy'),
  scoreThreshold: z.number().min(0).max(1).default(0.25),
  iouThreshold: z.number().min(0).max(1).default(0.45),
  maxDetections: z.number().int().positive().max(1000).default(100),
});

/** A smoke vector: named input tensors (flat data + dims) and the outputs the model must reproduce. */
export const SmokeVector = z.object({
  inputs: z.record(z.string(), z.object({ dims: z.array(z.number().int().nonnegative()), data: z.array(z.number()) })),
  expected: z.record(z.string(), z.object({ dims: z.array(z.number().int().nonnegative()), data: z.array(z.number()) })),
});

/** Smoke vectors too large to inline live in a binary file of the bundle (see smoke-file.ts). */
export const SmokeFile = z.object({
  path: z.literal('smoke.bin'),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.number().int().positive(),
});

export const Smoke = z.object({
  /** Absolute tolerance; the builder raises it to the error it measured for quantized models (see `measured`). */
  tolerance: z.number().nonnegative().default(1e-4),
  /** Given vectors; if empty, the builder generates `generate` vectors with onnxruntime at build time. */
  vectors: z.array(SmokeVector).default([]),
  generate: z.number().int().min(0).max(64).default(4),
  /** Set by the builder when the vectors live in `smoke.bin` instead of `vectors`. */
  file: SmokeFile.optional(),
  /**
   * Set by the builder: the largest output difference between the device's session options and a
   * plain session on the same vectors (quantized graphs differ), and the tolerance derived from it.
   */
  measured: z.object({ maxAbsDiff: z.number().nonnegative(), against: z.string() }).optional(),
});

/** Wire form of protocol's `SketchLayout`: what the agent's `stats` windows must be built on. */
export const SketchLayoutSchema = z.object({
  features: z.record(
    z.string().min(1),
    z.discriminatedUnion('kind', [
      z.object({ kind: z.literal('numeric'), edges: z.array(z.number()).min(1) }),
      z.object({ kind: z.literal('categorical'), categories: z.array(z.string()) }),
    ]),
  ),
  outputs: z.discriminatedUnion('task', [
    z.object({ task: z.literal('classification'), numClasses: z.number().int().positive() }),
    z.object({ task: z.literal('regression'), edges: z.array(z.number()).min(1) }),
    z.object({ task: z.literal('none') }),
  ]),
}) satisfies z.ZodType<SketchLayout>;

export const Reference = z.object({
  /** Reference bin edges per input feature (ascending), used by on-device input statistics. */
  bins: z.record(z.string(), z.array(z.number())).default({}),
  /**
   * The full sketch layout of the version's reference profile (numeric edges, categories, outputs),
   * filled in by the server at build time. When present the agent sketches on exactly this layout,
   * so its windows merge with the server's reference; `bins` stays for older agents.
   */
  layout: SketchLayoutSchema.optional(),
  /** Optional dataset the server profiles to compute the edges (name@version). */
  dataset: z.string().optional(),
});

export const BundleDefinition = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'lowercase letters, digits, . _ -'),
  description: z.string().optional(),
  /** Model ref (name@N or name@alias); the CLI's positional ref overrides it. */
  model: z.string().optional(),
  preprocess: Preprocess,
  postprocess: Postprocess.default({ softmax: false, topK: 1, task: 'classification', threshold: 0.5 }),
  smoke: Smoke.default({ tolerance: 1e-4, vectors: [], generate: 4 }),
  reference: Reference.default({ bins: {} }),
  /** onnxruntime session options devices run this bundle with (bundle-session.ts); unknown keys are refused. */
  session: BundleSessionOptions.optional(),
  minAgentVersion: z.string().regex(/^\d+\.\d+\.\d+$/).default('0.1.0'),
});

export type BundleDefinition = z.infer<typeof BundleDefinition>;
export type Preprocess = z.infer<typeof Preprocess>;
export type ImagePreprocess = z.infer<typeof ImagePreprocess>;
export type TabularPreprocess = z.infer<typeof TabularPreprocess>;
export type TensorPreprocess = z.infer<typeof TensorPreprocess>;
/** The kinds that produce one input tensor from a request (`preprocess.input`). */
export type SingleInputPreprocess = TabularPreprocess | ImagePreprocess;
export type Postprocess = z.infer<typeof Postprocess>;
export type DetectionPostprocess = z.infer<typeof DetectionPostprocess>;
export type SmokeVector = z.infer<typeof SmokeVector>;
