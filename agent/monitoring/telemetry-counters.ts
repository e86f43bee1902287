// What one telemetry interval counts, as deltas (the wire carries per-interval numbers so a lost
// report loses one interval, never a rate): completed inferences, failures by reason code, and the
// latency of completed requests on the fleet-wide log-spaced layout. `take()` hands the interval
// over and starts the next one. Plus the CPU share arithmetic, kept pure for testing.
import { createLatencyHistogram, recordLatency, type LatencyHistogram } from '../../protocol/sketch/latency-histogram.ts';
import type { PredictionEvent } from '../model-runtime.ts';

export interface IntervalCounts {
  inferences: number;
  errors: Record<string, number>;
  latency: LatencyHistogram;
}

/** Reason codes are metric labels on the server: bounded in length and in number. */
const MAX_REASONS = 32;

export class TelemetryCounters {
  private counts: IntervalCounts = fresh();

  /** Request path: a few additions. */
  record(e: Pick<PredictionEvent, 'ok' | 'code' | 'latencyMs'>): void {
    const c = this.counts;
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

function fresh(): IntervalCounts {
  return { inferences: 0, errors: Object.create(null) as Record<string, number>, latency: createLatencyHistogram() };
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
