// The optimizer's one error type. It is a ServiceError ('invalid_model', HTTP 422) so a route that calls
// the optimizer can let it reach the shared onError mapping; `reason` says why in a machine-readable way.
import { ServiceError } from '../errors.ts';

export type OptimizeRefusal =
  /** The bytes are not a decodable ONNX model (truncated, corrupted, not ONNX). */
  | 'corrupt_model'
  /** Weights stored outside the file, or another layout this optimizer does not rewrite. */
  | 'unsupported_model'
  /** The default-domain opset is too old for the requested rewrite. */
  | 'unsupported_opset'
  /** No MatMul/Gemm/Conv has a constant float32 weight that could be quantized. */
  | 'not_quantizable'
  /** Nothing could be pruned (no eligible weights, or no simple chain for structured pruning). */
  | 'not_prunable'
  /** Bad options (sparsity outside (0, 1), unknown form…). */
  | 'invalid_options'
  /** The rewritten model failed to load in onnxruntime (a bug here, reported rather than shipped). */
  | 'verification_failed';

export class OptimizeError extends ServiceError {
  constructor(
    readonly reason: OptimizeRefusal,
    message: string,
    details?: unknown,
  ) {
    super('invalid_model', message, { reason, ...(details && typeof details === 'object' ? details : details === undefined ? {} : { details }) });
    this.name = 'OptimizeError';
  }
}
