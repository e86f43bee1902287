// Load shedding for CONNECT storms: at most `max` device credential checks run at once. Beyond that
// the broker answers CONNACK 3 ("server unavailable") at once, which costs almost nothing, instead of
// queueing work that would only finish after the device's connect timeout; agents treat the refusal
// as "back off" (agent/mqtt-session.ts) and come back later, spread out by their jittered backoff.
export class ConnectGate {
  private inFlight = 0;

  constructor(readonly max: number) {}

  /** Takes a slot if one is free; every `true` must be followed by exactly one `leave()`. */
  tryEnter(): boolean {
    if (this.inFlight >= this.max) return false;
    this.inFlight++;
    return true;
  }

  leave(): void {
    this.inFlight--;
  }

  get pending(): number {
    return this.inFlight;
  }
}
