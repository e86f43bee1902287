// Load shedding for artifact downloads: at most `max` responses stream at once; past that a request
// is answered 503 with Retry-After at once, before any database read, instead of queueing until its
// client times out. A fleet that receives a deployment fetches the bundle within seconds; shedding
// spreads that herd over time (agents wait the Retry-After plus jitter, agent/downloader.ts) and
// keeps each admitted download fast. The slot is held until the body has been streamed, the client
// went away, or the client took no bytes for `idleTimeoutS` (idle-download.ts: the connection is closed).
export class DownloadGate {
  private inFlight = 0;

  constructor(
    readonly max: number,
    readonly retryAfterS: number,
    readonly idleTimeoutS = 60,
  ) {}

  /** A release function (idempotent) when a slot is free, else null (shed requests are counted by the
   * HTTP metrics as 503s). */
  tryEnter(): (() => void) | null {
    if (this.inFlight >= this.max) return null;
    this.inFlight++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inFlight--;
    };
  }
}
