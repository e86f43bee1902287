// Exponential backoff with jitter, shared by MQTT reconnects, enrollment and download retries.
// "Equal jitter": half the window is fixed, half random, so retries spread out (no thundering herd
// after a broker restart) but never collapse to zero.

export interface BackoffOptions {
  minMs: number;
  maxMs: number;
  factor?: number;
  random?: () => number;
}

export class Backoff {
  private attempt = 0;

  constructor(private readonly opts: BackoffOptions) {}

  /** Delay before the next attempt; each call doubles the window up to maxMs. */
  next(): number {
    const { minMs, maxMs, factor = 2, random = Math.random } = this.opts;
    const window = Math.min(maxMs, minMs * factor ** this.attempt);
    if (window < maxMs) this.attempt++;
    return Math.round(window / 2 + (random() * window) / 2);
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}

/** Resolves after `ms`, or rejects with the signal's reason when aborted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
