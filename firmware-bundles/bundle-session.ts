/**
 * Per-bundle onnxruntime session options: a bundle definition may tune how devices run its model
 * (`"session": { "intraOpNumThreads": 2, "graphOptimizationLevel": "extended" }`). They live in the
 * definition, so they ship in the bundle's `bundle.json`, whose hash the signed manifest names: a
 * device applies only options the release keys signed. The builder records smoke outputs with the
 * same options the agent will run the bundle with (output-affecting options such as the optimization
 * level change a quantized model's outputs).
 *
 * Unknown keys are refused (a typo such as `intraOpThreads` would otherwise be dropped silently).
 *
 * @example
 * const options = deviceSessionOptions(def.session); // DEVICE_SESSION_OPTIONS with the bundle's on top
 */
import { z } from 'zod';
import { DEVICE_SESSION_OPTIONS } from './session-options.ts';

const Threads = z.number().int().min(0).max(64);

export const BundleSessionOptions = z
  .object({
    /** onnxruntime's graph rewrites (default `all`). */
    graphOptimizationLevel: z.enum(['disabled', 'basic', 'extended', 'all']).optional(),
    /** Threads inside one operator (default 1 on devices; 0 = onnxruntime's choice, one per core). */
    intraOpNumThreads: Threads.optional(),
    /** Threads across operators when `executionMode` is `parallel` (default 1). */
    interOpNumThreads: Threads.optional(),
    executionMode: z.enum(['sequential', 'parallel']).optional(),
    /** Keep freed CPU buffers in onnxruntime's arena (default on): off trades speed for a smaller RSS. */
    enableCpuMemArena: z.boolean().optional(),
    /** Preplan memory from the first run's shapes (default on). */
    enableMemPattern: z.boolean().optional(),
    /** onnxruntime's log level on the device: 0 verbose, 1 info, 2 warning (default), 3 error, 4 fatal. */
    logSeverityLevel: z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3), z.literal(4)]).optional(),
  })
  .strict();
export type BundleSessionOptions = z.infer<typeof BundleSessionOptions>;

/** The options a device session of this bundle uses (and the builder records smoke outputs with). */
export function deviceSessionOptions(session: BundleSessionOptions | undefined) {
  return { ...DEVICE_SESSION_OPTIONS, ...session };
}
