// Server-side cap on sample uploads: a token bucket per device refilled at twice the device's
// maxPerMinute (the agent keeps to 1×; 2× leaves room for a backlog sent after an outage), holding up
// to max(2 × maxPerMinute, batchSize) so one full batch always fits eventually.
//
// The buckets live in this process: with N replicas behind a load balancer a device may get N × the
// cap, which still bounds it. Counting in the database instead would cost a query over the device's
// samples per upload (captured_samples has no index on receive time).

const MAX_DEVICES = 100_000;

export class SampleRateLimit {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  static capacity(maxPerMinute: number, batchSize: number): number {
    return Math.max(2 * maxPerMinute, batchSize);
  }

  /**
   * Takes `n` tokens for `deviceId`; returns 0 when granted, else the seconds until `n` tokens will
   * have refilled. Nothing is taken when refused.
   */
  take(deviceId: string, n: number, limits: { maxPerMinute: number; batchSize: number }): number {
    const capacity = SampleRateLimit.capacity(limits.maxPerMinute, limits.batchSize);
    const perMs = (2 * limits.maxPerMinute) / 60_000;
    const now = this.now();
    const b = this.buckets.get(deviceId) ?? { tokens: capacity, at: now };
    b.tokens = Math.min(capacity, b.tokens + (now - b.at) * perMs);
    b.at = now;
    if (this.buckets.size >= MAX_DEVICES && !this.buckets.has(deviceId)) this.buckets.clear();
    this.buckets.set(deviceId, b);
    if (b.tokens >= n) {
      b.tokens -= n;
      return 0;
    }
    return Math.max(1, Math.ceil((n - b.tokens) / perMs / 1000));
  }
}
