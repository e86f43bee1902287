// Exponential backoff with "full jitter", shared by MQTT reconnects, enrollment and download retries.
// Each delay is uniform in [0, window], the window doubling from minMs to maxMs. Even the first delay
// is random, so when a control-plane restart drops a whole fleet at once the devices come back spread
// over the window instead of as one burst, and spread wider with every refused attempt (a broker that
// sheds load answers "server unavailable"). Full rather than "equal" jitter (half fixed, half random):
// it spreads a herd best for the same expected wait (AWS Architecture Blog, "Exponential Backoff And
// Jitter"); a delay near zero is harmless because the window keeps growing until a success resets it.

export interface BackoffOptions {
  minMs: number;
  maxMs: number;
  factor?: number;
  random?: () => number;
}

export class Backoff {
  private attempt = 0;

  constructor(private readonly opts: BackoffOptions) {}

  /**
   * Delay before the next attempt: uniform in [0, window]; each call doubles the window up to maxMs.
   * `capMs` bounds this call's window and stops the growth at it: the MQTT session passes a small cap
   * while nothing listens (a refused TCP connect costs the server nothing), so a fleet waiting out a
   * restart probes every few seconds instead of drifting into maxMs windows, and a "busy" answer then
   * grows the window on from the cap.
   */
  next(capMs = Infinity): number {
    const window = this.window(Math.min(capMs, this.opts.maxMs));
    return Math.round((this.opts.random ?? Math.random)() * window);
  }

  /** The current upper bound (at most `top`), then grow it for the next call while below `top`. */
  private window(top: number): number {
    const { minMs, factor = 2 } = this.opts;
    const w = Math.min(top, minMs * factor ** this.attempt);
    if (w < top) this.attempt++;
    return w;
  }

  /** After a success: the next failure starts again from a window of minMs. */
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
