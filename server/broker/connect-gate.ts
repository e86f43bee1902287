// Load shedding for CONNECT storms: at most `max` device credential checks run at once. Beyond that
// the broker answers CONNACK 3 ("server unavailable") at once, which costs almost nothing, instead of
// queueing work that would only finish after the device's connect timeout; agents treat the refusal
// as "back off" (agent/mqtt-session.ts) and come back later, spread out by their jittered backoff.
// With a LoopLag it also sheds while the event loop runs late (the process is saturated, and a CONNACK
// would come after the client's connect timeout): checks pending are few when each takes microseconds.
import type { LoopLag } from './loop-lag.ts';

export class ConnectGate {
  private inFlight = 0;

  constructor(
    readonly max: number,
    private readonly lag?: LoopLag,
  ) {}

  /** Takes a slot if one is free; every `true` must be followed by exactly one `leave()`. */
  tryEnter(): boolean {
    if (this.inFlight >= this.max || this.lag?.overloaded) return false;
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
