// Per-device message rate limits on the embedded broker: one token bucket per (device, channel) for
// the channels that end up as rows (`telemetry`, `stats`, `reported`). A message over the rate is
// dropped; a device that keeps exceeding limits (over-rate or oversize) collects strikes, and past
// `strikes` of them within `strikeWindowMs` it is disconnected and refused at connect for `backoffMs`.
// State is in memory per broker process: a replica behind a broker cluster has its broker's limits.

export interface RateLimits {
  /** Sustained messages per second per device and channel. */
  ratePerS: number;
  /** Bucket size: how many messages a device may send at once (e.g. its outbox after a reconnect). */
  burst: number;
  /** Strikes (dropped messages) within `strikeWindowMs` that get a device disconnected. */
  strikes: number;
  strikeWindowMs: number;
  /** How long a disconnected offender is refused at connect. */
  backoffMs: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

interface Strikes {
  count: number;
  since: number;
}

export class DeviceRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly strikes = new Map<string, Strikes>();
  private readonly banned = new Map<string, number>();

  constructor(private readonly limits: RateLimits, private readonly now: () => number = Date.now) {}

  /** Takes one token from the device's bucket for `channel`; false when the bucket is empty. */
  take(deviceId: string, channel: string): boolean {
    const key = `${deviceId}\u0000${channel}`;
    const t = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.limits.burst, at: t };
    b.tokens = Math.min(this.limits.burst, b.tokens + ((t - b.at) / 1000) * this.limits.ratePerS);
    b.at = t;
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Records a dropped message; true when the device has now persisted long enough to be disconnected (and is banned). */
  strike(deviceId: string): boolean {
    const t = this.now();
    const s = this.strikes.get(deviceId);
    const current = s && t - s.since < this.limits.strikeWindowMs ? s : { count: 0, since: t };
    current.count += 1;
    this.strikes.set(deviceId, current);
    if (current.count < this.limits.strikes) return false;
    this.strikes.delete(deviceId);
    this.banned.set(deviceId, t + this.limits.backoffMs);
    return true;
  }

  /** Milliseconds the device is still refused at connect (0 when it may connect). */
  bannedFor(deviceId: string): number {
    const until = this.banned.get(deviceId);
    if (until === undefined) return 0;
    const left = until - this.now();
    if (left > 0) return left;
    this.banned.delete(deviceId);
    return 0;
  }

  /**
   * Drops state that no longer limits anyone: full buckets (the same as no bucket), strikes older than
   * the window, finished bans. Called on a timer so memory follows active offenders, not the fleet.
   */
  sweep(): void {
    const t = this.now();
    for (const [key, b] of this.buckets) if (b.tokens + ((t - b.at) / 1000) * this.limits.ratePerS >= this.limits.burst) this.buckets.delete(key);
    for (const [id, s] of this.strikes) if (t - s.since >= this.limits.strikeWindowMs) this.strikes.delete(id);
    for (const [id, until] of this.banned) if (until <= t) this.banned.delete(id);
  }
}
