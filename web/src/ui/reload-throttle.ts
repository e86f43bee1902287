// When an event-driven reload runs (useEventReload): at least `minMs` after the event that asked for it, so a
// burst of events becomes one reload, and never sooner than twice the last reload's own time after it ended.
// Why the second rule: with a slow load (the fleet page at 10,000 devices: 0.3–0.6 s of server time and a
// 6.6 MB answer) and events streaming in (a fleet-wide deployment's `reported`), a fixed 500 ms made the page
// reload back to back for as long as the events lasted — one open console kept most of a server core busy.
// Now a page spends at most about a third of that time reloading. Events during a reload ask for one more after it.
export class ReloadThrottle {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running = false;
  private pending = false;
  private stopped = false;
  private lastMs = 0;
  private endedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly reload: () => Promise<void>,
    private readonly minMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** An event that calls for a reload. */
  event(): void {
    if (this.stopped) return;
    if (this.running) {
      this.pending = true;
      return;
    }
    if (this.timer) return;
    const wait = Math.max(this.minMs, this.endedAt + 2 * this.lastMs - this.now());
    this.timer = setTimeout(() => void this.run(), wait);
  }

  /** No reload after this (the page went away). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private async run(): Promise<void> {
    this.timer = null;
    this.running = true;
    const started = this.now();
    try {
      await this.reload();
    } catch {
      // useLoad keeps its own error for the page; a failed reload is timed like any other.
    } finally {
      this.endedAt = this.now();
      this.lastMs = this.endedAt - started;
      this.running = false;
    }
    if (this.pending) {
      this.pending = false;
      this.event();
    }
  }
}
