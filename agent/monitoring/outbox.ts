// Store and forward for `stats` and `telemetry`: every message is first written durably to
// <dataDir>/outbox/ (one file per message, temp + fsync + rename, named by a position that keeps
// their order), then sent by one sender, oldest first, while MQTT is connected: publish at QoS 1,
// delete the file once the broker acknowledged it (PUBACK). Disconnected, the sender stops; it
// resumes on reconnect and after a restart, with the messages exactly as written (original window
// times and seq). A lost PUBACK means a resend, which the server dedupes on (device, seq). A kill -9
// loses nothing that reached the disk.
//
// Bounded: past `maxBytes` the oldest files are dropped (counted per channel). A file that cannot
// be read back (corrupt, truncated) is skipped, removed and counted.
//
// The channels are an option (default `stats` and `telemetry`): sample capture keeps its own outbox
// (another directory and bound) of upload batches with a `samples` channel and an HTTP publisher.
import { mkdir, readdir, readFile, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../fs-atomic.ts';

export type OutboxChannel = 'stats' | 'telemetry';
const DEFAULT_CHANNELS: readonly OutboxChannel[] = ['stats', 'telemetry'];

export interface OutboxPublisher<C extends string = OutboxChannel> {
  readonly connected: boolean;
  /** Resolves true once the broker acknowledged the message (or it is to be discarded), false if it was not sent. */
  publish(channel: C, message: unknown): Promise<boolean>;
}

export interface OutboxOptions<C extends string = OutboxChannel> {
  dir: string;
  /** Channel names (lowercase letters), part of each file name; default `stats`, `telemetry`. */
  channels?: readonly C[];
  maxBytes: number;
  logger: Logger;
  /** Give up on one publish after this long (it is retried; a late PUBACK only causes a duplicate). */
  publishTimeoutMs?: number;
  /** While connected with messages waiting, the sender retries this often after a failed publish. */
  retryMs?: number;
  /**
   * Send at most `burst` messages at once, then `ratePerS`: the server drops a device's messages past
   * its per-channel rate (FLOTILLA_MQTT_RATE_PER_S / _BURST), so a backlog drains below that instead.
   */
  pace?: { ratePerS: number; burst: number };
}

/** Below the server's defaults (10/s, burst 300 per channel) even when the whole backlog is one channel. */
export const DEFAULT_OUTBOX_PACE = { ratePerS: 8, burst: 200 };

interface Entry<C extends string> {
  name: string;
  channel: C;
  bytes: number;
}

export class Outbox<C extends string = OutboxChannel> {
  private entries: Entry<C>[] = [];
  private bytes = 0;
  private next = 0;
  private publisher?: OutboxPublisher<C>;
  private pumping: Promise<void> | null = null;
  private inFlight: string | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** Counters since start. */
  sent = 0;
  dropped: Record<C, number>;
  corrupt = 0;
  private readonly channels: readonly C[];
  private readonly pattern: RegExp;
  private tokens: number;
  private tokensAt = Date.now();

  constructor(private readonly opts: OutboxOptions<C>) {
    this.channels = opts.channels ?? (DEFAULT_CHANNELS as unknown as readonly C[]);
    if (!this.channels.length || this.channels.some((c) => !/^[a-z]+$/.test(c))) throw new Error(`bad outbox channels: ${this.channels.join(', ')}`);
    this.pattern = new RegExp(`^(\\d{12})\\.(${this.channels.join('|')})\\.json$`);
    this.dropped = this.zero();
    this.tokens = opts.pace?.burst ?? 0;
  }

  /** Waits for a send token (token bucket); false when stopped or disconnected meanwhile. */
  private async paced(publisher: OutboxPublisher<C>): Promise<boolean> {
    const pace = this.opts.pace;
    if (!pace) return true;
    for (;;) {
      const now = Date.now();
      this.tokens = Math.min(pace.burst, this.tokens + ((now - this.tokensAt) / 1000) * pace.ratePerS);
      this.tokensAt = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return true;
      }
      await new Promise((r) => setTimeout(r, Math.ceil(((1 - this.tokens) / pace.ratePerS) * 1000)).unref());
      if (this.stopped || !publisher.connected) return false;
    }
  }

  private zero(): Record<C, number> {
    return Object.fromEntries(this.channels.map((c) => [c, 0])) as Record<C, number>;
  }

  /** Reads what a previous run left (in order), removes interrupted temp files. */
  async init(): Promise<void> {
    await mkdir(this.opts.dir, { recursive: true, mode: 0o700 });
    const names = (await readdir(this.opts.dir)).sort();
    for (const name of names) {
      const m = this.pattern.exec(name);
      if (!m) {
        // Temp files of writes cut short by a crash, or strangers: neither will ever be sent.
        await rm(path.join(this.opts.dir, name), { force: true, recursive: true });
        if (!name.startsWith('.')) this.corrupt++;
        continue;
      }
      const bytes = (await stat(path.join(this.opts.dir, name))).size;
      this.entries.push({ name, channel: m[2] as C, bytes });
      this.bytes += bytes;
      this.next = Math.max(this.next, Number(m[1]) + 1);
    }
    if (this.entries.length) this.opts.logger.info({ messages: this.entries.length, bytes: this.bytes }, 'outbox holds messages from before the restart');
  }

  attach(publisher: OutboxPublisher<C>): void {
    this.publisher = publisher;
    this.kick();
  }

  get pending(): number {
    return this.entries.length;
  }

  get pendingBytes(): number {
    return this.bytes;
  }

  /** The seq of the newest readable message of a channel waiting here (seqs are stored in order). */
  async lastSeq(channel: C): Promise<number | null> {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i];
      if (e.channel !== channel) continue;
      const seq = ((await this.read(e).catch(() => null)) as { seq?: unknown } | null)?.seq;
      if (typeof seq === 'number') return seq;
    }
    return null;
  }

  /** Stores a message durably (dropping the oldest ones if it would not fit), then lets the sender know. */
  async append(channel: C, message: unknown): Promise<void> {
    const data = JSON.stringify(message);
    const size = Buffer.byteLength(data);
    if (size > this.opts.maxBytes) {
      this.dropped[channel]++;
      this.opts.logger.warn({ channel, bytes: size }, 'message larger than the whole outbox: dropped');
      return;
    }
    await this.makeRoom(size);
    const name = `${String(this.next++).padStart(12, '0')}.${channel}.json`;
    await writeFileAtomic(path.join(this.opts.dir, name), data);
    this.entries.push({ name, channel, bytes: size });
    this.bytes += size;
    this.kick();
  }

  /** Drops the oldest files (never the one being sent) until `size` more bytes fit. */
  private async makeRoom(size: number): Promise<void> {
    const dropped = this.zero();
    let any = false;
    while (this.bytes + size > this.opts.maxBytes) {
      const i = this.entries.findIndex((e) => e.name !== this.inFlight);
      if (i < 0) break;
      const [e] = this.entries.splice(i, 1);
      this.bytes -= e.bytes;
      dropped[e.channel]++;
      any = true;
      await unlink(path.join(this.opts.dir, e.name)).catch(() => {});
    }
    if (any) {
      for (const c of this.channels) this.dropped[c] += dropped[c];
      this.opts.logger.warn({ dropped, maxBytes: this.opts.maxBytes }, 'outbox full: oldest messages dropped');
    }
  }

  /** Starts the sender if there is something to send and a connection to send it on. */
  kick(): void {
    if (this.stopped || this.pumping || !this.publisher?.connected || this.entries.length === 0) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.pumping = this.pump().finally(() => {
      this.pumping = null;
      // Still connected with messages waiting: a publish failed without a disconnect. Try again later.
      if (!this.stopped && this.entries.length > 0 && this.publisher?.connected && !this.retryTimer) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.kick();
        }, this.opts.retryMs ?? 2000);
      }
    });
  }

  private async pump(): Promise<void> {
    const publisher = this.publisher!;
    while (!this.stopped && publisher.connected && this.entries.length > 0) {
      const e = this.entries[0];
      this.inFlight = e.name;
      let message: unknown;
      try {
        message = await this.read(e);
      } catch (err) {
        this.corrupt++;
        this.opts.logger.warn({ file: e.name, err: (err as Error).message }, 'unreadable outbox file skipped');
        await this.remove(e);
        continue;
      }
      if (!(await this.paced(publisher))) break;
      const ok = await this.publishBounded(publisher, e.channel, message);
      this.inFlight = null;
      if (!ok) return;
      this.sent++;
      await this.remove(e);
    }
    this.inFlight = null;
  }

  private async read(e: Entry<C>): Promise<unknown> {
    const msg = JSON.parse(await readFile(path.join(this.opts.dir, e.name), 'utf8')) as unknown;
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg) || !this.channels.includes(e.channel)) throw new Error('not a message object');
    return msg;
  }

  private async publishBounded(publisher: OutboxPublisher<C>, channel: C, message: unknown): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), this.opts.publishTimeoutMs ?? 30_000)));
    try {
      return await Promise.race([publisher.publish(channel, message), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Removes every waiting message but the one being sent (its publisher decides); returns how many. */
  async clear(): Promise<number> {
    const gone = this.entries.filter((e) => e.name !== this.inFlight);
    for (const e of gone) await this.remove(e);
    return gone.length;
  }

  private async remove(e: Entry<C>): Promise<void> {
    const i = this.entries.indexOf(e);
    if (i >= 0) {
      this.entries.splice(i, 1);
      this.bytes -= e.bytes;
    }
    // No directory fsync: a deletion lost to a crash only means one resend, which the server dedupes.
    await unlink(path.join(this.opts.dir, e.name)).catch(() => {});
  }

  /** Stops sending (files stay for the next start); waits briefly for a publish in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    // A publish waiting for a PUBACK that will not come must not hold the stop up: its file stays.
    await Promise.race([this.pumping, new Promise((r) => setTimeout(r, 1000).unref())]);
  }
}
