// The agent's monitoring, as one part with start/stop: telemetry every interval, input/output
// statistics per window, both through the on-disk outbox (store and forward). It listens to the
// runtime's prediction events (request path: counters and a bounded queue only) and to the
// reconciler's active bundle, whose verified manifest may carry `agentConfig` (intervals and the
// reference layout applied live). Local flags (`--telemetry-interval-s`, `--stats-window-s`) win over the manifest.
import path from 'node:path';
import type { Logger } from 'pino';
import { validateStatsMessage, type StatsMessage } from '../../protocol/messages/stats.ts';
import { toWireStats } from '../../protocol/messages/stats-wire.ts';
import { validateTelemetryMessage } from '../../protocol/messages/telemetry.ts';
import type { InstalledBundle } from '../bundle-store.ts';
import type { AgentConfig } from '../config.ts';
import type { ModelRuntime } from '../model-runtime.ts';
import type { StateStore } from '../state-store.ts';
import { DEFAULT_OUTBOX_PACE, Outbox, type OutboxChannel, type OutboxPublisher } from './outbox.ts';
import { StatsCollector } from './stats-collector.ts';
import { statsLayoutOf } from './stats-layout.ts';
import type { ClosedWindow } from './stats-windows.ts';
import { TelemetryCollector, type TelemetryDraft } from './telemetry-collector.ts';

export const DEFAULT_TELEMETRY_INTERVAL_S = 10;
/**
 * Seqs reserved per write of state.json: its `seq` is the end of the block reserved so far, and a run starts
 * there, so no seq is used twice across restarts (some are skipped; the server only dedupes on them). Every
 * message wrote state.json before — an atomic replace with two fsyncs every 10 s on a gateway's flash.
 */
export const SEQ_BLOCK = 100;
export const DEFAULT_STATS_WINDOW_S = 60;
export const OUTBOX_DIR = 'outbox';

export interface MonitoringOptions {
  deviceId: string;
  config: Pick<AgentConfig, 'dataDir' | 'telemetryIntervalS' | 'statsWindowS' | 'stats' | 'outboxMaxBytes'>;
  state: StateStore;
  runtime: ModelRuntime;
  logger: Logger;
}

export class Monitoring {
  private readonly outbox: Outbox;
  private telemetry?: TelemetryCollector;
  private stats?: StatsCollector;
  private unsubscribe?: () => void;
  private bundle: InstalledBundle | null = null;
  /** Messages this agent built that its own validators refused (a bug; never sent). */
  invalid = 0;
  /** Stats windows written to the outbox (durable from then on). */
  storedWindows = 0;
  /** The next seq of each channel this run (null: not used yet, it starts at state.json's reserved end). */
  private readonly next: Record<OutboxChannel, number | null> = { stats: null, telemetry: null };
  /** The write of each channel's newest reservation: a seq is handed out only once its block is on disk. */
  private readonly reserving: Record<OutboxChannel, Promise<void>> = { stats: Promise.resolve(), telemetry: Promise.resolve() };

  constructor(private readonly o: MonitoringOptions) {
    this.outbox = new Outbox({ dir: path.join(o.config.dataDir, OUTBOX_DIR), maxBytes: o.config.outboxMaxBytes, logger: o.logger, pace: DEFAULT_OUTBOX_PACE });
  }

  /** Reads the outbox left by a previous run, restores the sequences, starts the timers. */
  async start(): Promise<void> {
    const { o } = this;
    await this.outbox.init();
    await this.restoreSequences();
    this.telemetry = new TelemetryCollector({
      deviceId: o.deviceId,
      dataDir: o.config.dataDir,
      intervalS: this.telemetryIntervalS(),
      logger: o.logger,
      queueDepth: () => o.runtime.queueDepth(),
      activeBundle: () => (this.bundle ? { id: this.bundle.manifest.bundle.id, counter: this.bundle.manifest.counter } : null),
      monitoringTotals: () => ({
        outboxPending: this.outbox.pending,
        outboxPendingBytes: this.outbox.pendingBytes,
        outboxDropped: this.outbox.dropped.stats + this.outbox.dropped.telemetry,
        outboxCorrupt: this.outbox.corrupt,
        statsDropped: this.stats?.dropped ?? 0,
      }),
      emit: (draft) => this.sendTelemetry(draft),
    });
    if (o.config.stats === 'on') this.stats = new StatsCollector({ windowS: this.statsWindowS(), logger: o.logger, emit: (w) => this.sendStats(w) });
    this.unsubscribe = o.runtime.onPrediction((e) => {
      this.telemetry!.record(e);
      this.stats?.record(e);
    });
    this.telemetry.start();
    this.stats?.start();
    if (this.bundle) this.bundleActivated(this.bundle); // activated at boot, before the collectors existed
  }

  /** The MQTT session to send on (its reconnects call `connected()`). */
  attach(publisher: OutboxPublisher): void {
    this.outbox.attach(publisher);
  }

  /** After each (re)connection: send what waited. */
  connected(): void {
    this.outbox.kick();
  }

  /** The reconciler's onActive: the serving bundle and its verified manifest changed. */
  bundleActivated(b: InstalledBundle): void {
    this.bundle = b;
    this.telemetry?.setIntervalS(this.telemetryIntervalS());
    if (!this.stats) return;
    this.stats.setWindowS(this.statsWindowS());
    // A reference added after the build reaches the device in the signed manifest (adopted live).
    const layout = statsLayoutOf(b.definition, b.manifest.agentConfig?.statsLayout);
    if (!layout) this.o.logger.info({ bundle: b.manifest.bundle.id }, 'bundle carries no reference layout or bins: no input statistics for it');
    this.stats.setBundle(layout ? { id: b.manifest.bundle.id, model: b.manifest.bundle.model, definition: b.definition, layout } : null);
  }

  private telemetryIntervalS(): number {
    return this.o.config.telemetryIntervalS ?? this.bundle?.manifest.agentConfig?.telemetryIntervalS ?? DEFAULT_TELEMETRY_INTERVAL_S;
  }

  private statsWindowS(): number {
    return this.o.config.statsWindowS ?? this.bundle?.manifest.agentConfig?.statsWindowS ?? DEFAULT_STATS_WINDOW_S;
  }

  /** A lost or older state file must not reuse a seq the server has seen: the outbox knows the newest. */
  private async restoreSequences(): Promise<void> {
    const floors: Partial<Record<OutboxChannel, number>> = {};
    for (const ch of ['stats', 'telemetry'] as const) {
      const last = await this.outbox.lastSeq(ch);
      if (last !== null && last + 1 > this.o.state.get().seq[ch]) floors[ch] = last + 1;
    }
    if (Object.keys(floors).length) await this.o.state.update((s) => void Object.assign(s.seq, floors));
  }

  private async nextSeq(channel: OutboxChannel): Promise<number> {
    const seq = this.nextSeqOf(channel);
    this.next[channel] = seq + 1;
    if (seq >= this.o.state.get().seq[channel]) this.reserving[channel] = this.o.state.update((s) => void (s.seq[channel] = Math.max(s.seq[channel], seq + SEQ_BLOCK)));
    await this.reserving[channel];
    return seq;
  }

  private nextSeqOf(channel: OutboxChannel): number {
    return this.next[channel] ?? this.o.state.get().seq[channel];
  }

  private async sendStats(w: ClosedWindow): Promise<void> {
    const message: StatsMessage = { v: 1, deviceId: this.o.deviceId, bundleId: w.bundleId, model: w.model, windowStart: w.windowStart, windowEnd: w.windowEnd, seq: 0, sketch: w.sketch };
    // Checked as the object the server checks, sent in the binary form (stats-wire.ts: the server parses and stores it as is).
    if (await this.enqueue('stats', message, validateStatsMessage(message, { reference: w.layout, deviceId: this.o.deviceId }), toWireStats)) this.storedWindows++;
  }

  private async sendTelemetry(draft: TelemetryDraft): Promise<void> {
    const message = { ...draft, seq: 0 };
    await this.enqueue('telemetry', message, validateTelemetryMessage(message, { deviceId: this.o.deviceId }));
  }

  /** A message that fails the server's own validator is logged and counted, and uses neither a seq nor outbox space. */
  private async enqueue<M extends { seq: number }>(channel: OutboxChannel, message: M, check: { ok: true } | { ok: false; reason: string; message: string }, wire: (m: M) => unknown = (m) => m): Promise<boolean> {
    if (!check.ok) {
      this.invalid++;
      this.o.logger.error({ reason: check.reason, err: check.message }, `a ${channel} message failed its own validation; not sent`);
      return false;
    }
    message.seq = await this.nextSeq(channel);
    await this.outbox.append(channel, wire(message));
    return true;
  }

  /** What GET /v1/status shows. */
  status() {
    const s = this.stats;
    return {
      telemetry: { intervalS: this.telemetry?.intervalS ?? this.telemetryIntervalS(), nextSeq: this.nextSeqOf('telemetry') },
      stats: s
        ? { enabled: true, windowS: this.statsWindowS(), nextSeq: this.nextSeqOf('stats'), rows: s.rows, windows: s.windowsClosed, stored: this.storedWindows, openRows: s.openRows, queued: s.queued, dropped: s.dropped, stale: s.stale }
        : { enabled: false },
      outbox: { pending: this.outbox.pending, bytes: this.outbox.pendingBytes, sent: this.outbox.sent, dropped: { ...this.outbox.dropped }, corrupt: this.outbox.corrupt },
      invalid: this.invalid,
    };
  }

  /** Closes the window in progress into the outbox (a clean stop loses nothing), stops the timers and the sender. */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.stats?.stop();
    await this.telemetry?.stop();
    await this.outbox.stop();
  }
}
