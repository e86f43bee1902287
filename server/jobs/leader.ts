// Keeps one named lease while the process runs: renews it every third of the TTL, tries to take it
// when another holder stopped renewing, and tells its owner when leadership is gained or lost. A
// replica that dies simply stops renewing; another one takes over once the TTL has passed.
import type { Logger } from 'pino';
import type { Lease } from './lease.ts';

export interface LeaderOptions {
  lease: Lease;
  name: string;
  holder: string;
  ttlMs: number;
  logger: Logger;
  onGained(): void | Promise<void>;
  onLost(): void | Promise<void>;
}

export class Leader {
  private timer?: NodeJS.Timeout;
  private leading = false;
  private busy?: Promise<void>;
  private stopped = true;

  constructor(private readonly opts: LeaderOptions) {}

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.stopped = false;
    const loop = () => {
      this.busy = this.check().finally(() => {
        if (!this.stopped) this.timer = setTimeout(loop, Math.max(50, Math.floor(this.opts.ttlMs / 3)));
      });
    };
    loop();
  }

  /** Steps down (releasing the lease so a peer takes over at once) and stops trying. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.busy;
    if (this.leading) {
      this.leading = false;
      await this.opts.onLost();
      await this.opts.lease.release(this.opts.name, this.opts.holder).catch(() => undefined);
    }
  }

  private async check(): Promise<void> {
    const { lease, name, holder, ttlMs, logger } = this.opts;
    let holds: boolean;
    try {
      holds = this.leading ? await lease.renew(name, holder, ttlMs) : await lease.acquire(name, holder, ttlMs);
    } catch (err) {
      // A database hiccup: keep the current role; the TTL bounds how long a stale leader can act.
      logger.warn({ err, lease: name }, 'lease check failed');
      return;
    }
    if (holds === this.leading || this.stopped) return;
    this.leading = holds;
    logger.info({ lease: name, holder }, holds ? 'lease gained: running the scheduler here' : 'lease lost: another replica runs the scheduler');
    try {
      await (holds ? this.opts.onGained() : this.opts.onLost());
    } catch (err) {
      logger.error({ err, lease: name }, 'leadership change handler failed');
    }
  }
}
