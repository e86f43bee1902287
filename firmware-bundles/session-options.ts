/**
 * The onnxruntime session options every device session starts from, shared by the agent (which runs
 * bundles with them) and the bundle builder (which records smoke outputs with them): a quantized
 * graph gives slightly different outputs with and without `session.disable_quant_qdq` (≈ 4e-4 on a
 * real CNN's softmax), so recording with other options makes the device's smoke test fail.
 *
 * Weight-only int8 (QDQ) models from `flotilla optimize` keep their weights as int8 +
 * DequantizeLinear; onnxruntime keeps those for its QDQ fusions (dequantizing on every run) unless
 * `session.disable_quant_qdq` is set, which folds them into float32 weights once at load: small on
 * disk, float speed in memory (measured in server/optimize/quantize.ts). Float models are unaffected.
 * One intra-op thread: what the agent runs with by default, and a reduction split over threads may
 * round differently.
 *
 * @example
 * const session = await ort.InferenceSession.create(bytes, DEVICE_SESSION_OPTIONS);
 */
export const DEVICE_SESSION_OPTIONS = {
  graphOptimizationLevel: 'all',
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  extra: { session: { disable_quant_qdq: '1' } },
} as const;

/**
 * A session as plain as onnxruntime offers (no graph rewrites, QDQ run as written): the builder
 * measures how far a device's outputs may drift from the recorded ones by comparing with it.
 *
 * @example
 * const plain = await ort.InferenceSession.create(bytes, PLAIN_SESSION_OPTIONS);
 */
export const PLAIN_SESSION_OPTIONS = {
  graphOptimizationLevel: 'disabled',
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
} as const;
