/**
 * Sample batches (device → server over HTTP, `POST /api/v1/devices/{id}/samples`): request inputs and
 * the model's answers, captured only when the device's signed settings turn sample capture on (never
 * by default). They feed retraining; labels for them come back later by `predictionId`.
 *
 * - `sampleId` — unique per device (e.g. a UUID): a batch resent after a lost answer is stored once.
 * - `inputs` — tabular: feature name → number | string | boolean | null; images: `{ image: base64 }`
 *   of a JPEG or PNG of at most 1 MiB.
 * - `outputs` — top-1 class and its confidence (classifiers) or the value (regressors).
 *
 * Caps: at most 1,000 samples per batch and 8 MiB per request body.
 *
 * @example
 * const r = SampleBatch.safeParse(await req.json());
 * if (r.success) store(r.data.samples);
 */
import { z } from 'zod';
import { DEVICE_ID_PATTERN } from '../topics.ts';

export const MAX_SAMPLES_PER_BATCH = 1000;
export const MAX_SAMPLE_BATCH_BYTES = 8 * 1024 * 1024;
export const MAX_SAMPLE_IMAGE_BYTES = 1024 * 1024;
const MAX_FEATURES = 1000;

const JPEG = [0xff, 0xd8, 0xff];
const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** The decoded bytes of a base64 JPEG/PNG within the size cap, or a reason it is not one. */
function checkImage(b64: string): string | null {
  const bytes = Buffer.from(b64, 'base64');
  // Node's decoder skips junk silently: re-encoding must give the input back (padding aside).
  if (bytes.toString('base64').replace(/=+$/, '') !== b64.replace(/=+$/, '')) return 'not base64';
  if (bytes.length > MAX_SAMPLE_IMAGE_BYTES) return `image over ${MAX_SAMPLE_IMAGE_BYTES} bytes`;
  const starts = (sig: number[]) => sig.every((b, i) => bytes[i] === b);
  if (!starts(JPEG) && !starts(PNG)) return 'not a JPEG or PNG image';
  return null;
}

/** `{ image: base64 }` of a JPEG or PNG ≤ 1 MiB. */
export const ImageSampleInputs = z
  .object({ image: z.string().min(1).max(Math.ceil(MAX_SAMPLE_IMAGE_BYTES / 3) * 4 + 4) })
  .strict()
  .superRefine((v, ctx) => {
    const why = checkImage(v.image);
    if (why) ctx.addIssue({ code: 'custom', path: ['image'], message: why });
  });

/** Feature name → scalar. */
export const TabularSampleInputs = z
  .record(z.string().min(1).max(128), z.union([z.number(), z.string().max(1000), z.boolean(), z.null()]))
  .refine((r) => Object.keys(r).length >= 1 && Object.keys(r).length <= MAX_FEATURES, `1 to ${MAX_FEATURES} features`);

export const SampleOutputs = z
  .object({
    predictedClass: z.union([z.string().max(256), z.number().int()]).optional(),
    confidence: z.number().min(0).max(1).optional(),
    value: z.number().optional(),
  })
  .strict();
export type SampleOutputs = z.infer<typeof SampleOutputs>;

export const Sample = z.object({
  sampleId: z.string().min(1).max(128),
  at: z.iso.datetime({ offset: true }),
  predictionId: z.string().min(1).max(200).optional(),
  // An `image` key holding a short string is a tabular feature; one holding an encoded image is not.
  inputs: z.union([ImageSampleInputs, TabularSampleInputs]),
  outputs: SampleOutputs,
});
export type Sample = z.infer<typeof Sample>;

/** The request body of a sample upload. */
export const SampleBatch = z.object({
  v: z.literal(1),
  deviceId: z.string().regex(DEVICE_ID_PATTERN),
  bundleId: z.string().min(1).max(128),
  model: z.object({ name: z.string().min(1).max(128), version: z.number().int().positive() }),
  samples: z.array(Sample).min(1).max(MAX_SAMPLES_PER_BATCH),
});
export type SampleBatch = z.infer<typeof SampleBatch>;
