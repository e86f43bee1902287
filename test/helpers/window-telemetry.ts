// The fleet page's per-device window telemetry as first computed, device by device over its own rollup rows
// (the reference the window aggregate, server/fleet/fleet-telemetry.ts, must equal), and random telemetry
// written through ingest's own writer.
import { and, asc, eq, gte } from 'drizzle-orm';
import { createLatencyHistogram, latencyQuantile, mergeLatencyHistograms, recordLatency, type LatencyHistogram } from '../../protocol/sketch/latency-histogram.ts';
import type { TelemetryMessage } from '../../protocol/messages/telemetry.ts';
import type { Tx } from '../../server/db/client.ts';
import { telemetryRollups } from '../../server/db/schema.ts';
import { writeTelemetry, type TelemetryItem } from '../../server/ingest/telemetry-writer.ts';

export interface WindowTelemetry {
  ratePerSecond: number | null;
  errorRatio: number | null;
  p95: number | null;
}

export const NO_TELEMETRY: WindowTelemetry = { ratePerSecond: null, errorRatio: null, p95: null };

/** One device's telemetry over the minute buckets from `fromBucket` on, from its rollup rows in bucket order (null: no rows). */
export async function referenceTelemetry(db: Tx, deviceId: string, fromBucket: string): Promise<WindowTelemetry | null> {
  const rows = await db
    .select()
    .from(telemetryRollups)
    .where(and(eq(telemetryRollups.scope, 'device'), eq(telemetryRollups.key, deviceId), gte(telemetryRollups.bucketStart, fromBucket)))
    .orderBy(asc(telemetryRollups.bucketStart));
  if (!rows.length) return null;
  const inferences = rows.reduce((a, x) => a + x.inferences, 0);
  const errors = rows.reduce((a, x) => a + x.errorCount, 0);
  const seconds = (Date.parse(rows.map((x) => x.lastAt).sort().at(-1)!) - Date.parse(rows.map((x) => x.firstStart).sort()[0])) / 1000;
  const latency = rows.map((x) => x.latency).reduce((a: LatencyHistogram, b) => mergeLatencyHistograms(a, b), createLatencyHistogram());
  return {
    ratePerSecond: seconds > 0 ? inferences / seconds : null,
    errorRatio: inferences + errors > 0 ? errors / (inferences + errors) : null,
    p95: latencyQuantile(latency, 0.95),
  };
}

/** A seeded random source (Park–Miller). */
export function seeded(seed: number): () => number {
  return () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
}

/**
 * Random reports of `ids` (`perDevice` each, at times drawn from [fromMs, toMs)) written in one ingest
 * transaction: random counts, errors and latencies (a few slow tails), intervals of 10–60 s; `seq` numbers
 * continue per device in `seqs`. Devices with i % 7 === 3 report nothing; device 5 reports zero requests.
 */
export async function writeRandomTelemetry(db: { transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> }, o: { ids: readonly string[]; random: () => number; fromMs: number; toMs: number; perDevice: number; seqs: Map<string, number> }): Promise<void> {
  const items: TelemetryItem[] = [];
  for (const [i, deviceId] of o.ids.entries()) {
    if (i % 7 === 3) continue;
    for (let k = 0; k < o.perDevice; k++) {
      const at = o.fromMs + Math.floor(o.random() * (o.toMs - o.fromMs));
      const inferences = i === 5 ? 0 : Math.floor(o.random() * 50);
      const latency = createLatencyHistogram();
      for (let j = 0; j < inferences; j++) recordLatency(latency, o.random() < 0.05 ? 200 + o.random() * 2000 : 1 + o.random() * (5 + (i % 11)));
      const seq = (o.seqs.get(deviceId) ?? 0) + 1;
      o.seqs.set(deviceId, seq);
      const message: TelemetryMessage = {
        v: 1,
        deviceId,
        at: new Date(at).toISOString(),
        intervalS: 10 + Math.floor(o.random() * 50),
        seq,
        inferences,
        errors: o.random() < 0.3 ? { timeout: 1 + Math.floor(o.random() * 3) } : {},
        latency,
        queueDepth: 0,
        cpu: 0.1,
        rssBytes: 50e6,
        diskFreeBytes: 1e9,
        uptimeS: 100,
        activeBundle: null,
      };
      items.push({ deviceId, message, cohorts: [] });
    }
  }
  await db.transaction((tx) => writeTelemetry(tx, items, new Date()));
}
