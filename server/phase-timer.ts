// Milliseconds per step of a start or stop, logged with "control plane started/stopped": where a
// restart's seconds go (a reconnect storm waits for both) without a profiler.
export class PhaseTimer {
  private last = performance.now();
  readonly ms: Record<string, number> = {};

  /** Records the time since the previous mark (or construction) under `phase`. */
  mark(phase: string): void {
    const now = performance.now();
    this.ms[phase] = Math.round(now - this.last);
    this.last = now;
  }
}
