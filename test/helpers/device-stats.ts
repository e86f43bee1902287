// Synthetic device data built with the real protocol/ sketch code: reference rows for the 8-feature
// tabular demo model, per-window sketches (optionally with one feature shifted), and the `stats` /
// `telemetry` payloads an agent would publish.
import { addRow, createFeatureSetSketch, type FeatureSetSketch, type SketchLayout } from '../../protocol/sketch/feature-set-sketch.ts';
import { createLatencyHistogram, recordLatency, type LatencyHistogram } from '../../protocol/sketch/latency-histogram.ts';
import { gaussian, mulberry32 } from '../../protocol/sketch/random.ts';
import type { StatsMessage } from '../../protocol/messages/stats.ts';
import type { TelemetryMessage } from '../../protocol/messages/telemetry.ts';

export const FEATURES = ['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7'] as const;
/** Population std of each feature's generator (for shifts in σ units). */
const STD: Record<string, number> = { f0: 1, f1: 2, f2: 1, f3: 3, f4: Math.sqrt(1 / 12), f5: 1, f6: 0.5, f7: Math.SQRT2 };

export interface Row {
  values: Record<string, number>;
  predictedClass: number;
  confidence: number;
}

/** Rows from fixed distributions of different shapes; `shift` moves one feature by `sigmas` of its std. */
export function generateRows(n: number, seed: number, shift?: { feature: string; sigmas: number }): Row[] {
  const u = mulberry32(seed);
  const g = gaussian(u);
  const out: Row[] = [];
  for (let i = 0; i < n; i++) {
    const values: Record<string, number> = {
      f0: g(),
      f1: 5 + 2 * g(),
      f2: -Math.log(1 - u()),
      f3: 10 + 3 * g(),
      f4: u(),
      f5: Math.exp(0.5 * g()),
      f6: -3 + 0.5 * g(),
      f7: Math.floor(u() * 5),
    };
    if (shift) values[shift.feature] += shift.sigmas * STD[shift.feature];
    const r = u();
    // Outputs independent of the inputs: a shifted input must not show up as prediction drift here.
    out.push({ values, predictedClass: r < 0.5 ? 0 : r < 0.8 ? 1 : 2, confidence: 0.4 + 0.6 * u() });
  }
  return out;
}

export function rowsToCsv(rows: Row[]): string {
  const header = [...FEATURES, 'outputs.predictedClass', 'outputs.confidence'].join(',');
  return [header, ...rows.map((r) => [...FEATURES.map((f) => r.values[f]), r.predictedClass, r.confidence].join(','))].join('\n') + '\n';
}

export function sketchOf(layout: SketchLayout, rows: Row[]): FeatureSetSketch {
  const s = createFeatureSetSketch(layout);
  for (const r of rows) addRow(s, r.values, { predictedClass: r.predictedClass, confidence: r.confidence });
  return s;
}

export function statsMessage(m: { deviceId: string; bundleId: string; model: { name: string; version: number }; seq: number; start: Date; end: Date; sketch: FeatureSetSketch }): StatsMessage {
  return { v: 1, deviceId: m.deviceId, bundleId: m.bundleId, model: m.model, windowStart: m.start.toISOString(), windowEnd: m.end.toISOString(), seq: m.seq, sketch: m.sketch };
}

export function latencies(n: number, seed: number): LatencyHistogram {
  const g = gaussian(mulberry32(seed));
  const h = createLatencyHistogram();
  for (let i = 0; i < n; i++) recordLatency(h, Math.exp(1.5 + 0.6 * g())); // lognormal around 4.5 ms
  return h;
}

export function telemetryMessage(m: Omit<Partial<TelemetryMessage>, 'at'> & { deviceId: string; seq: number; at: Date; inferences: number }): TelemetryMessage {
  return {
    v: 1,
    intervalS: 10,
    errors: {},
    latency: latencies(m.inferences, m.seq + 1),
    queueDepth: 0,
    cpu: 0.1,
    rssBytes: 80e6,
    diskFreeBytes: 5e9,
    uptimeS: 100,
    activeBundle: null,
    ...m,
    at: m.at.toISOString(),
  } as TelemetryMessage;
}
