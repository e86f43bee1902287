// Probation: after a swap, the new model serves real traffic under watch. It passes after
// `requests` inferences or `durationMs`, whichever comes first, and fails as soon as, with at least
// `minRequests` seen, the share of failed inferences exceeds `maxErrorRate`. Bad input (4xx) is the
// caller's fault and does not count; onnxruntime failures and worker crashes do.
import type { InferenceOutcome, ModelRuntime } from './model-runtime.ts';

export interface ProbationOptions {
  durationMs: number;
  requests: number;
  minRequests: number;
  maxErrorRate: number;
}

export interface ProbationVerdict {
  ok: boolean;
  /** Ended by the signal (agent stopping): neither passed nor failed; a restart starts it over. */
  interrupted?: boolean;
  requests: number;
  errors: number;
  message: string;
}

/** Watches one bundle's outcomes until the verdict; `signal` ends it early as interrupted (agent stopping). */
export function watchProbation(runtime: Pick<ModelRuntime, 'onOutcome'>, counter: number, opts: ProbationOptions, signal?: AbortSignal): Promise<ProbationVerdict> {
  return new Promise((resolve) => {
    let requests = 0;
    let errors = 0;
    let done = false;
    const finish = (ok: boolean, message: string, interrupted = false) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      unsubscribe();
      signal?.removeEventListener('abort', onAbort);
      resolve({ ok, requests, errors, message, ...(interrupted ? { interrupted } : {}) });
    };
    const onOutcome = (o: InferenceOutcome) => {
      if (o.counter !== counter) return;
      requests++;
      if (!o.ok) errors++;
      if (requests >= opts.minRequests && errors / requests > opts.maxErrorRate) {
        finish(false, `${errors} of ${requests} inferences failed during probation (limit ${Math.round(opts.maxErrorRate * 100)} %)${o.code ? `, last: ${o.code}` : ''}`);
      } else if (requests >= opts.requests) {
        finish(true, `${requests} inferences, ${errors} failed`);
      }
    };
    const onAbort = () => finish(false, 'probation interrupted', true);
    const unsubscribe = runtime.onOutcome(onOutcome);
    const timer = setTimeout(() => finish(true, `probation window passed: ${requests} inferences, ${errors} failed`), opts.durationMs);
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
