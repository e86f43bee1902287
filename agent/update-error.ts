// Update failures as reason codes (protocol/messages/reported.ts UPDATE_FAILURE_CODES), and the
// per-step time bound that makes every update end in a terminal state.
import type { UpdateState } from '../protocol/messages/reported.ts';
import { BundleError } from './bundle-store.ts';
import { DownloadError } from './downloader.ts';

export class UpdateError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'UpdateError';
  }
}

const CODE_BY_PHASE: Partial<Record<UpdateState, string>> = { downloading: 'DOWNLOAD_FAILED', verifying: 'INVALID_BUNDLE', staging: 'MODEL_LOAD_FAILED', activating: 'ACTIVATION_FAILED' };

/** Any error of the update path as an UpdateError with a reported reason code. */
export function toUpdateError(err: unknown, phase: UpdateState): UpdateError {
  if (err instanceof UpdateError) return err.code === 'TIMEOUT' ? new UpdateError(CODE_BY_PHASE[phase] ?? 'ACTIVATION_FAILED', err.message) : err;
  if (err instanceof DownloadError) return new UpdateError(err.code, err.message);
  if (err instanceof BundleError) return new UpdateError('ACTIVATION_FAILED', err.message);
  const code = (err as { code?: unknown })?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'MODEL_LOAD_FAILED' || code === 'BUNDLE_MISMATCH') return new UpdateError('MODEL_LOAD_FAILED', message);
  return new UpdateError(CODE_BY_PHASE[phase] ?? 'ACTIVATION_FAILED', message);
}

/**
 * Bounds a step by `ms` and an abort signal: rejects with UpdateError(code) on timeout, with the
 * signal's reason on abort. A result that arrives late is handed to `cleanup` (e.g. release a model).
 */
export function boundedStep<T>(p: Promise<T>, o: { ms: number; code: string; what: string; signal?: AbortSignal; cleanup?: (v: T) => unknown }): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const onAbort = () => finish(() => reject(o.signal!.reason));
    const timer = setTimeout(() => finish(() => reject(new UpdateError(o.code, `${o.what} did not finish within ${o.ms} ms`))), o.ms);
    if (o.signal?.aborted) return onAbort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        if (settled) void Promise.resolve(o.cleanup?.(v)).catch(() => {});
        finish(() => resolve(v));
      },
      (err) => finish(() => reject(err)),
    );
  });
}
