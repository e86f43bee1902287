// Ingest of device `stats` and `telemetry`: messages are checked on arrival (shape, counts, clock),
// buffered, and written per batch in one transaction (every flushMs or batchSize messages) after
// the checks that need the database: the device must be approved and run the bundle and model the
// window names, and the sketch must match that version's reference layout. Refusals are counted in
// flotilla_mqtt_messages_dropped_total{channel, reason}; nothing a device sends can throw out of here.
// Raw windows and reports expire after the retention period (a cleanup on a timer).
import { and, eq, inArray, lt } from 'drizzle-orm';
import type { Logger } from 'pino';
import { Counter, Histogram } from 'prom-client';
import { checkSketchAgainstReference, validateStatsMessage } from '../../protocol/messages/stats.ts';
import { fastWireStats, wireMatchesReference } from '../../protocol/messages/stats-wire-fast-path.ts';
import { validateTelemetryMessage, type TelemetryMessage } from '../../protocol/messages/telemetry.ts';
import type { Db } from '../db/client.ts';
import { driftEvaluations, statsRollups, statsWindows, telemetry, telemetryRollups } from '../db/schema.ts';
import type { Metrics } from '../metrics.ts';
import { deleteOldDeliveries } from '../alerts/deliveries.ts';
import { deleteExpiredSamples } from '../samples/sample-service.ts';
import { nextBatchLimit } from './batch-limit.ts';
import { loadBatchContext, type BatchContext } from './device-context.ts';
import { deleteOldStatsDrops, recordStatsDrops, type StatsDrop } from './stats-drops.ts';
import { windowFromMessage, windowFromWire, type StatsWindow } from './stats-window.ts';
import { writeStats, type StatsItem } from './stats-writer.ts';
import { writeTelemetry, type TelemetryItem } from './telemetry-writer.ts';

export interface IngestOptions {
  db: Db;
  metrics: Metrics;
  logger: Logger;
  flushMs: number;
  batchSize: number;
  /** A batch grows beyond batchSize under a backlog while its transaction takes less than this (default 500 ms). */
  batchTargetMs?: number;
  retentionHours: number;
  minuteRollupRetentionHours: number;
  /** Captured samples (server/samples/) expire on the same timer. */
  samplesRetentionDays: number;
  /** Delivered alert webhook deliveries are deleted after this many days (default 30). */
  deliveryRetentionDays?: number;
  /** Messages waiting beyond this are refused (reason `backpressure`) instead of growing memory. */
  maxPending?: number;
  cleanupIntervalMs?: number;
  maxClockSkewMs?: number;
}

/** Server-side refusal reasons on top of protocol/'s STATS_REJECT_REASONS. */
export const INGEST_REJECT_REASONS = ['duplicate', 'unknown_device', 'not_assigned', 'no_reference', 'expired', 'backpressure', 'stopped', 'db_error'] as const;

type Pending = ({ kind: 'stats'; deviceId: string; window: StatsWindow } | { kind: 'telemetry'; deviceId: string; message: TelemetryMessage }) & {
  /** Settles the promise accept*() returned, once the message's batch was written (or dropped). */
  settle?: () => void;
};

const DONE: Promise<void> = Promise.resolve();

export class Ingest {
  private pending: Pending[] = [];
  private timer?: NodeJS.Timeout;
  private cleanupTimer?: NodeJS.Timeout;
  private flushing?: Promise<void>;
  /** Messages per transaction now: batchSize, grown under a backlog (batch-limit.ts). */
  private batchLimit: number;
  private running = false;
  private readonly stored: Counter<'channel'>;
  private readonly flushSeconds: Histogram;

  constructor(private readonly opts: IngestOptions) {
    this.batchLimit = opts.batchSize;
    const registers = [opts.metrics.registry];
    this.stored = new Counter({ name: 'flotilla_ingest_stored_total', help: 'Device stats windows and telemetry reports stored, by channel', labelNames: ['channel'], registers });
    this.flushSeconds = new Histogram({
      name: 'flotilla_ingest_flush_seconds',
      help: 'Duration of one ingest batch transaction',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
  }

  start(): void {
    this.running = true;
    const every = this.opts.cleanupIntervalMs ?? 10 * 60_000;
    this.cleanupTimer = setInterval(() => {
      this.cleanup().catch((err) => this.opts.logger.error({ err }, 'retention cleanup failed'));
    }, every);
    this.cleanupTimer.unref();
  }

  /** Stops accepting, writes what is buffered, and clears every timer. */
  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.cleanupTimer);
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  private drop(channel: 'stats' | 'telemetry', reason: string, deviceId: string, message?: string, count = 1): void {
    if (count <= 0) return;
    this.opts.metrics.mqttDropped.inc({ channel, reason }, count);
    this.opts.logger.debug({ deviceId, channel, reason, message }, 'dropped device message');
  }

  /**
   * A `stats` payload from `deviceId` (already JSON-parsed by the device bus). The promise settles once
   * the window is committed or refused: the device bus acknowledges the MQTT message then.
   */
  acceptStats(deviceId: string, raw: unknown): Promise<void> {
    const opts = { deviceId, maxClockSkewMs: this.opts.maxClockSkewMs };
    // The common window (sketchBase64, well formed) is accepted on its bytes; anything else gets the full check.
    const wire = fastWireStats(raw, opts);
    if (wire) return this.enqueue({ kind: 'stats', deviceId, window: windowFromWire(wire) });
    const r = validateStatsMessage(raw, opts);
    if (!r.ok) return this.drop('stats', r.reason, deviceId, r.message), DONE;
    if (r.salvaged.length) this.opts.logger.warn({ deviceId, features: r.salvaged }, 'stats window kept; features whose moments overflowed counted as nans');
    return this.enqueue({ kind: 'stats', deviceId, window: windowFromMessage(r.message, r.sketchBytes) });
  }

  /** A `telemetry` payload from `deviceId` (settles like acceptStats). */
  acceptTelemetry(deviceId: string, raw: unknown): Promise<void> {
    const r = validateTelemetryMessage(raw, { deviceId, maxClockSkewMs: this.opts.maxClockSkewMs });
    if (!r.ok) return this.drop('telemetry', r.reason, deviceId, r.message), DONE;
    return this.enqueue({ kind: 'telemetry', deviceId, message: r.message });
  }

  private enqueue(p: Pending): Promise<void> {
    if (!this.running) return this.drop(p.kind, 'stopped', p.deviceId), DONE;
    if (this.pending.length >= (this.opts.maxPending ?? 50_000)) return this.drop(p.kind, 'backpressure', p.deviceId), DONE;
    const settled = new Promise<void>((resolve) => (p.settle = resolve));
    this.pending.push(p);
    if (this.pending.length >= this.opts.batchSize) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.opts.flushMs);
    return settled;
  }

  /** Writes everything buffered so far (resolves when the buffer is empty). */
  flush(): Promise<void> {
    // Disarmed first, also when a flush is running: a timer left set after firing into a running flush
    // kept enqueue() from arming a new one, and a quiet fleet's messages waited for a full batch.
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.flushing) return this.flushing.then(() => (this.pending.length ? this.flush() : undefined));
    if (!this.pending.length) return Promise.resolve();
    this.flushing = (async () => {
      while (this.pending.length) {
        const batch = this.pending.splice(0, this.batchLimit);
        const started = performance.now();
        await this.writeBatch(batch); // never throws: a batch that cannot be written is dropped and counted
        const ms = performance.now() - started;
        this.batchLimit = nextBatchLimit({ limit: this.batchLimit, size: batch.length, ms, base: this.opts.batchSize, targetMs: this.opts.batchTargetMs ?? 500 });
        for (const p of batch) p.settle?.();
      }
    })().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    const end = this.flushSeconds.startTimer();
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.opts.db.transaction(async (tx) => {
          const now = new Date();
          const ctx = await loadBatchContext(tx, batch.map((p) => p.deviceId), { layouts: batch.some((p) => p.kind === 'stats') });
          const stats: StatsItem[] = [];
          const tele: TelemetryItem[] = [];
          const refused: Array<[Pending, string]> = [];
          const drops: StatsDrop[] = [];
          for (const p of batch) {
            const why = p.kind === 'stats' ? this.checkStats(p, ctx, now, stats, drops) : this.checkTelemetry(p.deviceId, p.message, ctx, now, tele);
            if (why) refused.push([p, why]);
          }
          if (drops.length) await recordStatsDrops(tx, drops);
          const s = stats.length ? await writeStats(tx, stats, now) : null;
          const t = tele.length ? await writeTelemetry(tx, tele, now) : null;
          return { refused, s, t };
        });
        // Counted only once committed, so a retried batch is not counted twice.
        const { refused, s, t } = result;
        for (const [p, why] of refused) this.drop(p.kind, why, p.deviceId);
        if (s) {
          this.stored.inc({ channel: 'stats' }, s.stored);
          // A resend after a reconnect (same device and seq): stored once, the repeat is counted as dropped.
          this.drop('stats', 'duplicate', '*', undefined, s.duplicates);
          if (s.layoutResets) this.opts.logger.warn({ rollups: s.layoutResets }, 'stats rollups restarted after a reference layout change');
        }
        if (t) {
          this.stored.inc({ channel: 'telemetry' }, t.stored);
          this.drop('telemetry', 'duplicate', '*', undefined, t.duplicates);
        }
        break;
      } catch (err) {
        // SQLITE_BUSY from a concurrent writer, a replica holding the lock: retry a few times, then give up on this batch.
        if (attempt < 3) {
          this.opts.logger.warn({ err, attempt }, 'ingest batch failed; retrying');
          await new Promise((r) => setTimeout(r, 50 * attempt));
          continue;
        }
        this.opts.logger.error({ err, messages: batch.length }, 'ingest batch failed; dropping it');
        for (const p of batch) this.drop(p.kind, 'db_error', p.deviceId);
        break;
      }
    }
    end();
  }

  private expired(iso: string, now: Date): boolean {
    // Past the retention the raw row that would catch a resend is gone: refuse rather than double-count the rollups.
    return Date.parse(iso) < now.getTime() - this.opts.retentionHours * 3_600_000;
  }

  private checkStats({ deviceId, window: m }: Pending & { kind: 'stats' }, ctx: BatchContext, now: Date, out: StatsItem[], drops: StatsDrop[]): string | null {
    const device = ctx.devices.get(deviceId);
    if (!device || device.status !== 'approved') return 'unknown_device';
    if (this.expired(m.windowEnd, now)) return 'expired';
    // The window must come from a bundle the device was given (or still reports running) and name that bundle's model version.
    if (m.bundleId !== device.desiredBundleId && m.bundleId !== device.activeBundleId) return 'not_assigned';
    const bundle = ctx.bundles.get(m.bundleId);
    if (!bundle || bundle.modelName !== m.model.name || bundle.version !== m.model.version) return 'not_assigned';
    const layout = ctx.layouts.get(bundle.modelVersionId);
    // Refusals against the reference are shown to the user under the version (stats-drops.ts).
    const refuse = (reason: string) => (drops.push({ modelVersionId: bundle.modelVersionId, deviceId, reason, rows: m.rows, at: now }), reason);
    if (!layout) return refuse('no_reference');
    // On the bytes when they certainly match; the object check names the reason of a mismatch.
    const bad = wireMatchesReference(m.bytes, m.layout, layout) ? null : checkSketchAgainstReference(m.sketch(), layout);
    if (bad) return refuse(bad.reason);
    out.push({ deviceId, message: m, modelVersionId: bundle.modelVersionId, cohorts: device.cohorts });
    return null;
  }

  private checkTelemetry(deviceId: string, m: TelemetryMessage, ctx: BatchContext, now: Date, out: TelemetryItem[]): string | null {
    const device = ctx.devices.get(deviceId);
    if (!device || device.status !== 'approved') return 'unknown_device';
    if (this.expired(m.at, now)) return 'expired';
    out.push({ deviceId, message: m, cohorts: device.cohorts });
    return null;
  }

  /** Deletes raw windows/reports past the retention, minute rollups past theirs, old drift evaluations, captured samples and delivered webhook deliveries. */
  async cleanup(now = new Date()): Promise<{ windows: number; telemetry: number; minuteRollups: number; evaluations: number; samples: number; deliveries: number }> {
    const { db } = this.opts;
    const raw = new Date(now.getTime() - this.opts.retentionHours * 3_600_000).toISOString();
    const minute = new Date(now.getTime() - this.opts.minuteRollupRetentionHours * 3_600_000).toISOString();
    // In slices, so a large backlog never holds the write lock for long.
    const sliced = async (run: () => Promise<number>) => {
      let total = 0;
      for (;;) {
        const n = await run();
        total += n;
        if (n < 5000) return total;
      }
    };
    const windows = await sliced(async () => {
      const ids = db.select({ id: statsWindows.id }).from(statsWindows).where(lt(statsWindows.windowEnd, raw)).limit(5000);
      return (await db.delete(statsWindows).where(inArray(statsWindows.id, ids)).returning({ id: statsWindows.id })).length;
    });
    const reports = await sliced(async () => {
      const ids = db.select({ id: telemetry.id }).from(telemetry).where(lt(telemetry.at, raw)).limit(5000);
      return (await db.delete(telemetry).where(inArray(telemetry.id, ids)).returning({ id: telemetry.id })).length;
    });
    let statsMinutes = 0;
    for (const scope of ['device', 'cohort', 'fleet'] as const) {
      const r = await db
        .delete(statsRollups)
        .where(and(eq(statsRollups.scope, scope), eq(statsRollups.granularity, 'minute'), lt(statsRollups.bucketStart, minute)))
        .returning({ k: statsRollups.bucketStart });
      statsMinutes += r.length;
    }
    const teleMinutes = await db.delete(telemetryRollups).where(lt(telemetryRollups.bucketStart, minute)).returning({ k: telemetryRollups.bucketStart });
    const evaluations = await db.delete(driftEvaluations).where(lt(driftEvaluations.at, raw)).returning({ id: driftEvaluations.id });
    await deleteOldStatsDrops(db, raw); // refusal counts live as long as the raw windows
    const samples = await deleteExpiredSamples(db, this.opts.samplesRetentionDays, now);
    const deliveries = await deleteOldDeliveries(db, this.opts.deliveryRetentionDays ?? 30, now);
    const result = { windows, telemetry: reports, minuteRollups: statsMinutes + teleMinutes.length, evaluations: evaluations.length, samples, deliveries };
    if (windows || reports || result.minuteRollups || result.evaluations || samples || deliveries) this.opts.logger.info(result, 'retention cleanup');
    return result;
  }
}
