// `telemetry` every interval: the counters of the interval (TelemetryCounters), the inference queue
// depth, CPU share, RSS, free disk of the data directory's filesystem, uptime, the active bundle and
// the monitoring data lost on the device since the previous report (`monitoring`, MonitoringLoss).
// `intervalS` is the time actually elapsed since the previous report (a late timer or a changed
// interval stays exact). The message goes to `emit` (seq, outbox).
import { statfs } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import type { TelemetryMessage } from '../../protocol/messages/telemetry.ts';
import type { PredictionEvent } from '../model-runtime.ts';
import { cpuShare, MonitoringLoss, TelemetryCounters, type MonitoringTotals } from './telemetry-counters.ts';

export type TelemetryDraft = Omit<TelemetryMessage, 'seq'>;

export interface TelemetryCollectorOptions {
  deviceId: string;
  dataDir: string;
  intervalS: number;
  logger: Logger;
  queueDepth(): number;
  activeBundle(): { id: string; counter: number } | null;
  /** Running loss totals and the outbox backlog; every report carries their deltas as `monitoring`. */
  monitoringTotals?(): MonitoringTotals;
  emit(draft: TelemetryDraft): Promise<void>;
}

export class TelemetryCollector {
  private readonly counters = new TelemetryCounters();
  private readonly loss = new MonitoringLoss();
  private readonly cores = availableParallelism();
  private timer: NodeJS.Timeout | null = null;
  private last = { at: Date.now(), cpu: process.cpuUsage() };
  private reporting: Promise<void> = Promise.resolve();

  constructor(private readonly opts: TelemetryCollectorOptions) {}

  /** Request path. */
  record(e: PredictionEvent): void {
    this.counters.record(e);
  }

  start(): void {
    this.last = { at: Date.now(), cpu: process.cpuUsage() };
    this.schedule();
  }

  /** A new interval applies from now (the report in progress covers the time so far). */
  setIntervalS(seconds: number): void {
    if (seconds === this.opts.intervalS) return;
    this.opts.intervalS = seconds;
    if (this.timer) this.schedule();
  }

  get intervalS(): number {
    return this.opts.intervalS;
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.reporting;
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.reporting = this.reporting.then(() => this.report()).catch((err) => this.opts.logger.error({ err }, 'telemetry report failed'));
      this.schedule();
    }, this.opts.intervalS * 1000);
  }

  /** Builds the interval's report and hands it on. */
  async report(): Promise<void> {
    const now = Date.now();
    const cpu = process.cpuUsage();
    const elapsedMs = Math.max(1, now - this.last.at);
    const share = cpuShare(this.last.cpu, cpu, elapsedMs, this.cores);
    this.last = { at: now, cpu };
    const counts = this.counters.take();
    const totals = this.opts.monitoringTotals?.();
    let diskFreeBytes = 0;
    try {
      const fs = await statfs(this.opts.dataDir);
      diskFreeBytes = fs.bavail * fs.bsize;
    } catch (err) {
      this.opts.logger.debug({ err: (err as Error).message }, 'statfs of the data dir failed');
    }
    await this.opts.emit({
      v: 1,
      deviceId: this.opts.deviceId,
      at: new Date(now).toISOString(),
      intervalS: elapsedMs / 1000,
      inferences: counts.inferences,
      errors: { ...counts.errors },
      latency: counts.latency,
      // A second that began in the previous interval is counted there: keep activeS ≤ intervalS.
      activeS: Math.min(counts.activeS, elapsedMs / 1000),
      queueDepth: this.opts.queueDepth(),
      cpu: share,
      rssBytes: process.memoryUsage.rss(),
      diskFreeBytes,
      uptimeS: process.uptime(),
      activeBundle: this.opts.activeBundle(),
      ...(totals ? { monitoring: this.loss.take(totals) } : {}),
    });
  }
}
