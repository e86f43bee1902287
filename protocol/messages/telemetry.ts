/**
 * `telemetry` (device → server, QoS 0/1, not retained): what the agent measured over the last
 * interval. Counters are per interval (deltas), not totals since start, so a lost QoS 0 message
 * loses one interval instead of corrupting a rate, and the server can add intervals across devices.
 *
 * - `inferences` — completed inference requests; `errors` — failed ones by reason code
 *   (e.g. `{ preprocess: 2, timeout: 1 }`).
 * - `latency` — end-to-end request latency on the shared log-spaced layout (exact fleet merges).
 * - `activeS` (optional: agents before it omit it) — the seconds of the interval in which the device
 *   was serving: distinct wall-clock seconds in which at least one request (ok or failed) ended, so
 *   200 requests in 2.5 s count 3 or 4 seconds. The server divides `inferences` by it for the rate
 *   while serving; without it, an interval with requests counts as active for its whole `intervalS`.
 * - `queueDepth` — requests waiting for the inference worker at `at`.
 * - `cpu` — the agent process's CPU time over the interval divided by (interval × cores), so 0…1
 *   whatever the core count; `rssBytes`, `diskFreeBytes` (data dir's filesystem), `uptimeS`.
 * - `activeBundle` — the bundle serving requests and its manifest counter, or `null` before the
 *   first activation.
 * - `monitoring` (optional: agents before it omit it) — monitoring data the device itself lost, kept
 *   apart from `errors` so it never counts as failed requests. `outboxDropped` (oldest outbox
 *   messages dropped at the size bound), `outboxCorrupt` (outbox files unreadable and skipped) and
 *   `statsDropped` (prediction samples refused by the full in-memory stats queue) are per-interval
 *   deltas like the counters above; `outboxPending` / `outboxPendingBytes` are gauges at `at`.
 *
 * @example
 * const r = validateTelemetryMessage(JSON.parse(payload), { deviceId });
 * if (r.ok) latencyP95.set(latencyQuantile(r.message.latency, 0.95) ?? 0);
 */
import { z } from 'zod';
import { LATENCY_BUCKETS, LATENCY_LAYOUT, type LatencyHistogram } from '../sketch/latency-histogram.ts';
import { DEVICE_ID_PATTERN } from '../topics.ts';
import { IsoTime } from './stats-fast-path.ts';
import { Count, reasonOfIssues, type StatsRejectReason } from './stats.ts';
import { fastTelemetryMessage } from './telemetry-fast-path.ts';

/** Wire form of `LatencyHistogram` (layout, bucket count and totals checked). */
export const LatencyHistogramSchema = z
  .object({
    layout: z.literal(LATENCY_LAYOUT),
    counts: z.array(Count),
    count: Count,
    sumMs: z.number().nonnegative(),
    minMs: z.number().nonnegative().nullable(),
    maxMs: z.number().nonnegative().nullable(),
  })
  .superRefine((h, ctx) => {
    const fail = (reason: StatsRejectReason, message: string, path: string) => ctx.addIssue({ code: 'custom', message, params: { reason }, path: [path] });
    if (h.counts.length !== LATENCY_BUCKETS) return fail('bins_mismatch', `expected ${LATENCY_BUCKETS} buckets, got ${h.counts.length}`, 'counts');
    if (h.counts.reduce((a, b) => a + b, 0) !== h.count) return fail('count_mismatch', 'buckets do not add up to count', 'count');
    if (h.count === 0 ? h.minMs !== null || h.maxMs !== null : h.minMs === null || h.maxMs === null) return fail('invalid_moments', 'min/max must be null exactly when empty', 'minMs');
    if (h.minMs !== null && h.maxMs !== null && h.minMs > h.maxMs) return fail('min_gt_max', 'minMs > maxMs', 'minMs');
  }) satisfies z.ZodType<LatencyHistogram>;

/** Monitoring data lost on the device (deltas) and its outbox backlog (gauges), see above. */
export const MonitoringHealth = z.object({
  outboxPending: Count,
  outboxPendingBytes: Count,
  outboxDropped: Count,
  outboxCorrupt: Count,
  statsDropped: Count,
});
export type MonitoringHealth = z.infer<typeof MonitoringHealth>;
/** The loss counters of `MonitoringHealth` (the ones that add up across intervals and devices). */
export type MonitoringLost = Pick<MonitoringHealth, 'outboxDropped' | 'outboxCorrupt' | 'statsDropped'>;

/** The `telemetry` payload (fields above). */
export const TelemetryMessage = z.object({
  v: z.literal(1),
  deviceId: z.string().regex(DEVICE_ID_PATTERN),
  at: IsoTime,
  intervalS: z.number().positive().max(86_400),
  /** Monotonic per device, for dedupe and gap detection. */
  seq: z.number().int().nonnegative(),
  inferences: Count,
  errors: z.record(z.string().min(1).max(64), Count),
  latency: LatencyHistogramSchema,
  activeS: z.number().nonnegative().max(86_400).optional(),
  queueDepth: Count,
  cpu: z.number().min(0).max(1),
  rssBytes: Count,
  diskFreeBytes: Count,
  uptimeS: z.number().nonnegative(),
  activeBundle: z.object({ id: z.string().min(1).max(200), counter: z.number().int().nonnegative() }).nullable(),
  monitoring: MonitoringHealth.optional(),
});
export type TelemetryMessage = z.infer<typeof TelemetryMessage>;

/**
 * Parses a `telemetry` payload; on refusal answers with the same reason codes as `stats`
 * (`schema_version`, `negative_count`, `bins_mismatch`, `future_window`, …).
 *
 * @example
 * validateTelemetryMessage(payload, { deviceId }) // { ok: false, reason: 'negative_count', … }
 */
export function validateTelemetryMessage(
  raw: unknown,
  opts: { deviceId?: string; now?: Date; maxClockSkewMs?: number } = {},
): { ok: true; message: TelemetryMessage } | { ok: false; reason: StatsRejectReason; message: string; path: PropertyKey[] } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { ok: false, reason: 'malformed', message: 'payload is not an object', path: [] };
  if ((raw as { v?: unknown }).v !== 1) return { ok: false, reason: 'schema_version', message: `unsupported v ${JSON.stringify((raw as { v?: unknown }).v)}`, path: ['v'] };
  // The hand-written check accepts the common well-formed report; anything else gets the schema's verdict.
  let m = fastTelemetryMessage(raw);
  if (!m) {
    const parsed = TelemetryMessage.safeParse(raw);
    if (!parsed.success) return { ok: false, ...reasonOfIssues(parsed.error.issues) };
    m = parsed.data;
  }
  if (opts.deviceId !== undefined && m.deviceId !== opts.deviceId) return { ok: false, reason: 'device_mismatch', message: 'deviceId differs from the topic', path: ['deviceId'] };
  const now = (opts.now ?? new Date()).getTime();
  if (Date.parse(m.at) > now + (opts.maxClockSkewMs ?? 5 * 60_000)) return { ok: false, reason: 'future_window', message: 'report time is in the future', path: ['at'] };
  return { ok: true, message: m };
}
