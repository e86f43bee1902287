/**
 * Typed errors of the inference runtime. Every failure a caller can act on carries a stable `code`
 * (a metric label, an API error code) and a message written for the person reading the log.
 * They cross the worker boundary as plain `{ code, message, details }` and are rebuilt here, so a
 * caller can `instanceof RuntimeError` whichever thread the error came from.
 *
 * @example
 * try { await engine.predict({ features: { f0: 1 } }); }
 * catch (err) { if (err instanceof RuntimeError && err.code === 'INVALID_INPUT') reply(400, err.toJSON()); }
 */

export const RUNTIME_ERROR_CODES = [
  /** The model file is missing, truncated, not ONNX, or uses an operator this runtime lacks. */
  'MODEL_LOAD_FAILED',
  /** The request does not fit the model or the bundle's preprocessing spec (shape, type, missing field). */
  'INVALID_INPUT',
  /** The image bytes could not be decoded (or are larger than allowed). */
  'INVALID_IMAGE',
  /** onnxruntime failed while running a well-formed request. */
  'INFERENCE_FAILED',
  /** The worker thread died while the request was on it; the worker has been restarted. */
  'WORKER_CRASHED',
  /** The host or engine is not started, or is stopping. */
  'NOT_RUNNING',
  /** No model is active (nothing activated yet). */
  'NO_ACTIVE_MODEL',
  /** The handle was never loaded here, or has been released. */
  'UNKNOWN_HANDLE',
  /** The active handle cannot be released; activate another one first. */
  'HANDLE_ACTIVE',
  /** The bundle's pre/postprocessing spec does not match the model's inputs and outputs. */
  'BUNDLE_MISMATCH',
] as const;
export type RuntimeErrorCode = (typeof RUNTIME_ERROR_CODES)[number];

/** The structured-clone friendly form of a `RuntimeError` (worker messages, API answers). */
export interface RuntimeErrorJson {
  code: RuntimeErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

export class RuntimeError extends Error {
  override readonly name = 'RuntimeError';
  constructor(
    readonly code: RuntimeErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }

  toJSON(): RuntimeErrorJson {
    return this.details === undefined ? { code: this.code, message: this.message } : { code: this.code, message: this.message, details: this.details };
  }

  static fromJSON(json: RuntimeErrorJson): RuntimeError {
    return new RuntimeError(json.code, json.message, json.details);
  }
}

/** Shorthand for the most common error. */
export function invalidInput(message: string, details?: Record<string, unknown>): RuntimeError {
  return new RuntimeError('INVALID_INPUT', message, details);
}

/** Any thrown value as a RuntimeError; unknown errors get `fallback` as their code. */
export function asRuntimeError(err: unknown, fallback: RuntimeErrorCode): RuntimeError {
  if (err instanceof RuntimeError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new RuntimeError(fallback, message);
}
