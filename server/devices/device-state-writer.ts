// Presence and `reported` writes, coalesced per device and written in one transaction per flush.
// Every (re)connect produces up to three of them (the broker's connect event, the retained `status`
// and the `reported` the agent sends on connect): written one transaction each, a fleet reconnecting
// at once would queue tens of thousands of write transactions behind each other. Only the newest
// presence per device matters, so a burst collapses into a few statements. Every `reported` message is
// kept in order (bounded) with its own arrival time, so each update-state change still gets its
// `device.update` event and the serving history its exact boundaries. Every other message a device sends
// (telemetry, stats) only moves `lastSeen`: folded into the same per-device entry, so a fleet's live
// traffic costs one UPDATE per flush and chunk of devices, never a write per message.
// `presence` and `reported` resolve once their flush committed: the device bus acknowledges a
// `status` or `reported` message to the broker only then (replica mode), like telemetry and stats.
import type { Logger } from 'pino';
import type { Db } from '../db/client.ts';
import { type Reported, writePresenceInTx, writeReportedInTx, writeSeenInTx } from '../events/device-events.ts';

interface PendingState {
  online?: boolean;
  /** The device's `reported` messages since the last flush with their arrival times, oldest first. */
  reports: Array<{ reported: Reported; at: string }>;
  /** Newest time the device was heard from ('' when only replays of retained messages came in). */
  lastSeen: string;
  /** Settled when this state is committed (the promises presence() and reported() returned). */
  committed?: Array<() => void>;
}

/** `reported` messages kept per device between flushes; an agent sends a handful per update. */
const MAX_REPORTS_PER_FLUSH = 32;

export interface DeviceStateWriterOptions {
  db: Db;
  logger: Logger;
  /** A burst is written at most this long after its first event. */
  flushMs: number;
  /** Devices per flush transaction (a bigger backlog is written in several). */
  batchSize?: number;
}

// SQLite binds at most 32,766 variables per statement; stay far below.
const IDS_PER_STATEMENT = 500;

export class DeviceStateWriter {
  private pending = new Map<string, PendingState>();
  private timer?: NodeJS.Timeout;
  private flushing?: Promise<void>;

  constructor(private readonly opts: DeviceStateWriterOptions) {}

  /** The device connected (true) or went away (false); a `replay` (retained `status`) does not move lastSeen. */
  presence(deviceId: string, online: boolean, at = new Date(), opts: { replay?: boolean } = {}): Promise<void> {
    return this.mergeAndWait(deviceId, { online, reports: [], lastSeen: opts.replay ? '' : at.toISOString() });
  }

  /**
   * The device's newest `reported` document. A `replay` (the broker's retained copy, delivered when the
   * server subscribes) updates the stored state but is not a sign of life: lastSeen stays.
   */
  reported(deviceId: string, reported: Reported, at = new Date(), opts: { replay?: boolean } = {}): Promise<void> {
    return this.mergeAndWait(deviceId, { reports: [{ reported, at: at.toISOString() }], lastSeen: opts.replay ? '' : at.toISOString() });
  }

  /** The device sent something else (telemetry, stats): only its `lastSeen` moves. */
  seen(deviceId: string, at = new Date()): void {
    this.merge(deviceId, { reports: [], lastSeen: at.toISOString() });
  }

  /** Like merge(); the promise settles once the flush holding this event committed. */
  private mergeAndWait(deviceId: string, next: PendingState): Promise<void> {
    return new Promise<void>((resolve) => this.merge(deviceId, { ...next, committed: [resolve] }));
  }

  private merge(deviceId: string, next: PendingState): void {
    const prev = this.pending.get(deviceId);
    this.pending.set(deviceId, prev ? combine(prev, next) : next);
    this.timer ??= setTimeout(() => void this.flush(), this.opts.flushMs);
  }

  /** Writes everything buffered so far (resolves when the buffer is empty or a write failed). */
  flush(): Promise<void> {
    // Disarmed first, also when a flush is running: a timer that fired into a running flush and stayed
    // set kept every later merge() from arming a new one, and the writer stored nothing more until stop().
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.flushing) return this.flushing.then(() => (this.pending.size ? this.flush() : undefined));
    if (!this.pending.size) return Promise.resolve();
    const batchSize = this.opts.batchSize ?? 5000;
    this.flushing = (async () => {
      while (this.pending.size) {
        const batch = [...this.pending].slice(0, batchSize);
        for (const [id] of batch) this.pending.delete(id);
        try {
          await this.write(batch);
          for (const [, s] of batch) for (const settle of s.committed ?? []) settle();
        } catch (err) {
          // Keep what failed unless a newer event replaced it, and try again on the next tick.
          for (const [id, s] of batch) {
            const newer = this.pending.get(id);
            this.pending.set(id, newer ? combine(s, newer) : s);
          }
          this.opts.logger.error({ err, devices: batch.length }, 'device state write failed; retrying');
          this.timer ??= setTimeout(() => void this.flush(), this.opts.flushMs);
          return;
        }
      }
    })().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async write(batch: Array<[string, PendingState]>): Promise<void> {
    await this.opts.db.transaction(async (tx) => {
      // Presence alone (the common case in a storm): one statement pair per online value and chunk, with
      // the burst's newest time as last_seen (at most flushMs later than the device's own event); replays
      // of retained `status` messages are grouped apart and leave last_seen as is.
      for (const [online, live] of [[true, true], [true, false], [false, true], [false, false]]) {
        const group = batch.filter(([, s]) => !s.reports.length && s.online === online && Boolean(s.lastSeen) === live);
        if (!group.length) continue;
        const lastSeen = group.reduce((m, [, s]) => (s.lastSeen > m ? s.lastSeen : m), '');
        for (let i = 0; i < group.length; i += IDS_PER_STATEMENT) {
          await writePresenceInTx(tx, group.slice(i, i + IDS_PER_STATEMENT).map(([id]) => id), online, lastSeen);
        }
      }
      // Seen without a presence change (live telemetry, stats and `reported`): one UPDATE per chunk, never
      // moving last_seen backwards (a fan-out's 10,000 `reported` messages took one UPDATE each).
      const seen = batch.filter(([, s]) => s.online === undefined && s.lastSeen);
      if (seen.length) {
        const lastSeen = seen.reduce((m, [, s]) => (s.lastSeen > m ? s.lastSeen : m), '');
        for (let i = 0; i < seen.length; i += IDS_PER_STATEMENT) {
          await writeSeenInTx(tx, seen.slice(i, i + IDS_PER_STATEMENT).map(([id]) => id), lastSeen);
        }
      }
      for (const [id, s] of batch) {
        if (!s.reports.length) continue;
        if (s.online !== undefined) await writePresenceInTx(tx, [id], s.online, s.lastSeen);
        for (const r of s.reports) await writeReportedInTx(tx, id, r.reported, r.at);
      }
    });
  }

  /** Writes what is buffered and clears the timer. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}

/** `next` after `prev`: the newest presence, every report in order (the oldest dropped past the bound). */
function combine(prev: PendingState, next: PendingState): PendingState {
  return {
    online: next.online ?? prev.online,
    reports: [...prev.reports, ...next.reports].slice(-MAX_REPORTS_PER_FLUSH),
    lastSeen: next.lastSeen > prev.lastSeen ? next.lastSeen : prev.lastSeen,
    // A report coalesced away (past the bound) counts as handled once the newer state is committed.
    committed: prev.committed || next.committed ? [...(prev.committed ?? []), ...(next.committed ?? [])] : undefined,
  };
}
