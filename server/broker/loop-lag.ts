// Event-loop lag as an overload signal for the connect gate. The bench's timeline of a storm on a
// loaded machine showed no CONNACK "busy" at all, but thousands of connects lost to the client's 10 s
// timeout: the pending-credential-check cap never filled (a check takes microseconds), while accepted
// connections waited behind whole loop turns of other connects — work done for clients that had
// already given up. A loop turn that ran over `maxLagMs` marks the process overloaded for `holdMs`.
export class LoopLag {
  private timer?: NodeJS.Timeout;
  private last = 0;
  private overloadedUntil = 0;
  /** The largest lag seen (ms), for logs and tests. */
  worstMs = 0;

  constructor(
    private readonly opts: { maxLagMs: number; holdMs: number; everyMs?: number; now?: () => number },
  ) {}

  start(): void {
    const every = this.opts.everyMs ?? 50;
    this.last = this.now();
    this.timer = setInterval(() => this.sample(this.now() - this.last - every), every);
    this.timer.unref();
  }

  /** One timer tick that came `lagMs` late. */
  sample(lagMs: number): void {
    const now = this.now();
    this.last = now;
    this.worstMs = Math.max(this.worstMs, lagMs);
    if (lagMs > this.opts.maxLagMs) this.overloadedUntil = now + this.opts.holdMs;
  }

  get overloaded(): boolean {
    return this.now() < this.overloadedUntil;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private now(): number {
    return this.opts.now ? this.opts.now() : performance.now();
  }
}
