// EventFeed: follows the events table for this replica's SSE streams. One poller per process reads
// new rows into a bounded buffer (only while someone listens) and wakes the streams; a stream that is
// further behind than the buffer (a resume from an old id) reads the table itself. Every replica polls
// the same table, so every replica serves the same stream. Also deletes events past the retention.
import type { Logger } from 'pino';
import type { Db } from '../db/client.ts';
import { deleteOldEvents, lastEventId, readEventsAfter } from './event-log.ts';
import { EVENT_KINDS, type EventKind, type EventView } from './event-types.ts';

export interface EventFeedOptions {
  db: Db;
  logger: Logger;
  /** How often the table is polled while streams are open. */
  pollMs: number;
  /** A `: keep-alive` comment is sent after this long without an event. */
  keepAliveMs: number;
  retentionDays: number;
  /** Events kept in memory for streams that are nearly caught up. */
  bufferSize?: number;
}

const PAGE = 500;

export type FeedItem = EventView[] | 'keep-alive';

export class EventFeed {
  /** The buffer holds exactly the events with floor < id ≤ cursor. */
  private cursor = 0;
  private floor = 0;
  private buffer: EventView[] = [];
  private listeners = 0;
  private readonly waiters = new Set<() => void>();
  private pollTimer?: NodeJS.Timeout;
  private cleanupTimer?: NodeJS.Timeout;
  private stopped = false;
  /** False while nobody listens: the buffer is not kept up to date then. */
  private ready = false;

  constructor(private readonly opts: EventFeedOptions) {}

  start(): void {
    this.cleanupTimer = setInterval(() => void this.cleanup(), 3_600_000);
    this.cleanupTimer.unref();
    void this.cleanup();
    this.schedulePoll();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.pollTimer);
    clearInterval(this.cleanupTimer);
    this.wakeAll();
  }

  async cleanup(now = new Date()): Promise<number> {
    try {
      const n = await deleteOldEvents(this.opts.db, this.opts.retentionDays, now);
      if (n) this.opts.logger.info({ events: n }, 'events retention cleanup');
      return n;
    } catch (err) {
      this.opts.logger.error({ err }, 'events retention cleanup failed');
      return 0;
    }
  }

  /**
   * The stream after `after` (default: from now on), as batches of events of the given kinds, with a
   * 'keep-alive' whenever nothing was sent for keepAliveMs. Ends when `signal` aborts or the feed stops.
   */
  async *follow(opts: { kinds: readonly EventKind[]; after?: number; signal: AbortSignal }): AsyncGenerator<FeedItem> {
    const { kinds, signal } = opts;
    this.listen(+1);
    try {
      let last = opts.after ?? (await lastEventId(this.opts.db));
      let quietSince = Date.now();
      while (!signal.aborted && !this.stopped) {
        const { events, next } = await this.after(last, kinds);
        last = next;
        if (events.length) {
          quietSince = Date.now();
          yield events;
          continue;
        }
        const quiet = Date.now() - quietSince;
        if (quiet >= this.opts.keepAliveMs) {
          quietSince = Date.now();
          yield 'keep-alive';
          continue;
        }
        await this.wait(this.opts.keepAliveMs - quiet, signal);
      }
    } finally {
      this.listen(-1);
    }
  }

  /** Matching events after `last` and the id to continue from (past non-matching ones too). */
  private async after(last: number, kinds: readonly EventKind[]): Promise<{ events: EventView[]; next: number }> {
    const all = kinds.length === EVENT_KINDS.length;
    if (this.ready && last >= this.floor) {
      const cursor = this.cursor;
      const events: EventView[] = [];
      for (const e of this.buffer) {
        if (e.id <= last || (!all && !kinds.includes(e.kind))) continue;
        events.push(e);
        if (events.length === PAGE) return { events, next: e.id };
      }
      return { events, next: Math.max(last, cursor) };
    }
    // Behind the buffer: read the table. Everything up to the cursor read before this query is
    // committed, so a short page means nothing else matches up to it.
    const cursor = this.ready ? this.cursor : 0;
    const events = await readEventsAfter(this.opts.db, last, kinds, PAGE);
    if (events.length === PAGE) return { events, next: events[PAGE - 1].id };
    return { events, next: Math.max(last, events.at(-1)?.id ?? last, cursor) };
  }

  private listen(delta: 1 | -1): void {
    this.listeners += delta;
  }

  private schedulePoll(): void {
    if (this.stopped) return;
    this.pollTimer = setTimeout(() => void this.poll().finally(() => this.schedulePoll()), this.opts.pollMs);
  }

  private async poll(): Promise<void> {
    try {
      if (this.listeners === 0) {
        this.ready = false;
        this.buffer = [];
        return;
      }
      if (!this.ready) {
        // Nobody listened until now: start the buffer afresh rather than read what went by meanwhile.
        this.buffer = [];
        this.cursor = this.floor = await lastEventId(this.opts.db);
        this.ready = true;
      }
      let got = 0;
      for (;;) {
        const rows = await readEventsAfter(this.opts.db, this.cursor, EVENT_KINDS, PAGE);
        if (!rows.length) break;
        this.buffer.push(...rows);
        this.cursor = rows.at(-1)!.id;
        got += rows.length;
        if (rows.length < PAGE) break;
      }
      const max = this.opts.bufferSize ?? 5000;
      if (this.buffer.length > max) {
        const dropped = this.buffer.splice(0, this.buffer.length - max);
        this.floor = dropped.at(-1)!.id;
      }
      if (got) this.wakeAll();
    } catch (err) {
      this.opts.logger.warn({ err }, 'event feed poll failed');
    }
  }

  private wait(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done);
      this.waiters.add(done);
    });
  }

  private wakeAll(): void {
    for (const w of [...this.waiters]) w();
  }
}
