/**
 * Hand-written acceptance check for the `telemetry` payload, the twin of stats-fast-path.ts: it
 * answers "accepted" (with the `TelemetryMessage` schema's output, keys in the schema's order) or
 * "ask zod"; every refusal and every doubtful input (unknown keys, an `undefined` optional) gets the
 * schema's verdict, so reasons and messages are unchanged. Tested against the schema in
 * telemetry-fast-path.test.ts.
 */
import { LATENCY_BUCKETS, LATENCY_LAYOUT } from '../sketch/latency-histogram.ts';
import { DEVICE_ID_PATTERN } from '../topics.ts';
import { count, countSum, finite, isoTime, plainWithKeys, str } from './stats-fast-path.ts';
import type { TelemetryMessage } from './telemetry.ts';

const MESSAGE_KEYS = new Set(['v', 'deviceId', 'at', 'intervalS', 'seq', 'inferences', 'errors', 'latency', 'activeS', 'queueDepth', 'cpu', 'rssBytes', 'diskFreeBytes', 'uptimeS', 'activeBundle', 'monitoring']);
const LATENCY_KEYS = new Set(['layout', 'counts', 'count', 'sumMs', 'minMs', 'maxMs']);
const BUNDLE_KEYS = new Set(['id', 'counter']);
const MONITORING_KEYS = new Set(['outboxPending', 'outboxPendingBytes', 'outboxDropped', 'outboxCorrupt', 'statsDropped']);
const ANY_KEY: ReadonlySet<string> = { has: () => true } as unknown as ReadonlySet<string>;
const nonNegative = (v: unknown): v is number => finite(v) && v >= 0;

function latency(v: unknown): TelemetryMessage['latency'] | null {
  if (!plainWithKeys(v, LATENCY_KEYS) || v.layout !== LATENCY_LAYOUT) return null;
  const { counts, count: n, sumMs, minMs, maxMs } = v;
  const total = countSum(counts, Infinity);
  if (total < 0 || !count(n) || !nonNegative(sumMs) || !(minMs === null || nonNegative(minMs)) || !(maxMs === null || nonNegative(maxMs))) return null;
  if ((counts as number[]).length !== LATENCY_BUCKETS || total !== n) return null;
  if (n === 0 ? minMs !== null || maxMs !== null : minMs === null || maxMs === null) return null;
  if (minMs !== null && maxMs !== null && minMs > maxMs) return null;
  return { layout: LATENCY_LAYOUT, counts: counts as number[], count: n, sumMs, minMs, maxMs };
}

/**
 * The message as the `TelemetryMessage` schema would output it, when the payload is certainly
 * valid; `null` means "not certain": run the schema.
 */
export function fastTelemetryMessage(raw: unknown): TelemetryMessage | null {
  if (!plainWithKeys(raw, MESSAGE_KEYS) || raw.v !== 1) return null;
  const { deviceId, at, intervalS, seq, inferences, errors, queueDepth, cpu, rssBytes, diskFreeBytes, uptimeS, activeBundle } = raw;
  if (typeof deviceId !== 'string' || !DEVICE_ID_PATTERN.test(deviceId) || !isoTime(at)) return null;
  if (!finite(intervalS) || !(intervalS > 0 && intervalS <= 86_400) || !count(seq) || !count(inferences)) return null;
  if (!count(queueDepth) || !finite(cpu) || !(cpu >= 0 && cpu <= 1) || !count(rssBytes) || !count(diskFreeBytes) || !nonNegative(uptimeS)) return null;
  if (!plainWithKeys(errors, ANY_KEY)) return null;
  const errs: Record<string, number> = {};
  for (const k of Object.keys(errors)) {
    // '__proto__' would land on the prototype of zod's output object: leave that to the schema.
    if (!str(k, 1, 64) || k === '__proto__' || !count(errors[k])) return null;
    errs[k] = errors[k] as number;
  }
  const lat = latency(raw.latency);
  if (!lat) return null;
  let bundle: TelemetryMessage['activeBundle'] = null;
  if (activeBundle !== null) {
    if (!plainWithKeys(activeBundle, BUNDLE_KEYS) || !str(activeBundle.id, 1, 200) || !count(activeBundle.counter)) return null;
    bundle = { id: activeBundle.id, counter: activeBundle.counter };
  }
  const m: TelemetryMessage = { v: 1, deviceId, at, intervalS, seq, inferences, errors: errs, latency: lat } as TelemetryMessage;
  if ('activeS' in raw) {
    if (!nonNegative(raw.activeS) || raw.activeS > 86_400) return null;
    m.activeS = raw.activeS;
  }
  Object.assign(m, { queueDepth, cpu, rssBytes, diskFreeBytes, uptimeS, activeBundle: bundle });
  if ('monitoring' in raw) {
    const h = raw.monitoring;
    if (!plainWithKeys(h, MONITORING_KEYS)) return null;
    const { outboxPending, outboxPendingBytes, outboxDropped, outboxCorrupt, statsDropped } = h;
    if (!count(outboxPending) || !count(outboxPendingBytes) || !count(outboxDropped) || !count(outboxCorrupt) || !count(statsDropped)) return null;
    m.monitoring = { outboxPending, outboxPendingBytes, outboxDropped, outboxCorrupt, statsDropped };
  }
  return m;
}
