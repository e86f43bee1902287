// What one telemetry interval counts, as deltas (the wire carries per-interval numbers so a lost
// report loses one interval, never a rate): completed inferences, failures by reason code, and the
// latency of completed requests on the fleet-wide log-spaced layout. `take()` hands the interval
// over and starts the next one. Plus the CPU share arithmetic, kept pure for testing, and
// `MonitoringLoss`, which turns the outbox's and stats queue's running totals into the same deltas.
import type { MonitoringHealth } from '../../protocol/messages/telemetry.ts';
import { createLatencyHistogram, recordLatency, type LatencyHistogram } from '../../protocol/sketch/latency-histogram.ts';
import type { PredictionEvent } from '../model-runtime.ts';

export interface IntervalCounts {
  inferences: number;
  errors: Record<string, number>;
  latency: LatencyHistogram;
  /** Distinct wall-clock seconds of the interval in which a request (ok or failed) ended: the time the device was serving. */
  activeS: number;
}

/** Reason codes are metric labels on the server: bounded in length and in number. */
const MAX_REASONS = 32;

export class TelemetryCounters {
  private counts: IntervalCounts = fresh();
  /** The wall-clock second of the last request: kept across intervals so a second is counted once. */
  private lastSecond = -1;

  /** Request path: a few additions. */
  record(e: Pick<PredictionEvent, 'ok' | 'code' | 'latencyMs'>, nowMs = Date.now()): void {
    const c = this.counts;
    const second = Math.floor(nowMs / 1000);
    if (second !== this.lastSecond) {
      this.lastSecond = second;
      c.activeS++;
    }
    if (e.ok) {
      c.inferences++;
      recordLatency(c.latency, e.latencyMs);
      return;
    }
    let reason = (e.code ?? 'INTERNAL').slice(0, 64) || 'INTERNAL';
    if (!Object.hasOwn(c.errors, reason) && Object.keys(c.errors).length >= MAX_REASONS) reason = 'OTHER';
    c.errors[reason] = (c.errors[reason] ?? 0) + 1;
  }

  /** The interval so far; the counters start over. */
  take(): IntervalCounts {
    const c = this.counts;
    this.counts = fresh();
    return c;
  }
}

/** Running totals of monitoring data lost on this device since the process started, and the outbox backlog now. */
export interface MonitoringTotals {
  outboxPending: number;
  outboxPendingBytes: number;
  /** Outbox messages dropped (oldest first at the size bound, or too large), all channels. */
  outboxDropped: number;
  /** Outbox files unreadable at start or when sending, skipped. */
  outboxCorrupt: number;
  /** Prediction samples refused by the full stats queue. */
  statsDropped: number;
}

/**
 * Deltas of the loss counters since the previous `take()`. The totals are in-process (they start at
 * 0 with the agent, which is also this baseline), so losses counted while reading the outbox at start
 * go into the first report; a lost report (QoS 0) or a restart loses at most one interval's deltas.
 *
 * @example
 * const l = new MonitoringLoss();
 * l.take({ outboxPending: 3, outboxPendingBytes: 900, outboxDropped: 5, outboxCorrupt: 0, statsDropped: 2 }).outboxDropped // 5
 */
export class MonitoringLoss {
  private last = { outboxDropped: 0, outboxCorrupt: 0, statsDropped: 0 };

  take(now: MonitoringTotals): MonitoringHealth {
    const d = (k: keyof MonitoringLoss['last']) => Math.max(0, now[k] - this.last[k]);
    const out: MonitoringHealth = {
      outboxPending: now.outboxPending,
      outboxPendingBytes: now.outboxPendingBytes,
      outboxDropped: d('outboxDropped'),
      outboxCorrupt: d('outboxCorrupt'),
      statsDropped: d('statsDropped'),
    };
    this.last = { outboxDropped: now.outboxDropped, outboxCorrupt: now.outboxCorrupt, statsDropped: now.statsDropped };
    return out;
  }
}

function fresh(): IntervalCounts {
  return { inferences: 0, errors: Object.create(null) as Record<string, number>, latency: createLatencyHistogram(), activeS: 0 };
}

/**
 * The process's CPU time over an interval as a share of all cores (0…1): Δ(user + system) /
 * (elapsed × cores). Both `process.cpuUsage()` values are microseconds.
 *
 * @example
 * cpuShare({ user: 0, system: 0 }, { user: 500_000, system: 500_000 }, 1000, 2) // 0.5
 */
export function cpuShare(before: NodeJS.CpuUsage, after: NodeJS.CpuUsage, elapsedMs: number, cores: number): number {
  if (!(elapsedMs > 0) || !(cores > 0)) return 0;
  const usedUs = after.user - before.user + (after.system - before.system);
  const share = usedUs / (elapsedMs * 1000 * cores);
  return Math.min(1, Math.max(0, share));
}
