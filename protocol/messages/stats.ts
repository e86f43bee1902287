/**
 * `stats` (device → server, QoS 1, not retained): a device's input and output sketches for one
 * window of one model, as a `sketch` object or (agents since issue 16) `sketchBase64`, its binary
 * form (stats-wire.ts). The server dedupes on (deviceId, seq), checks the sketch against the
 * version's reference layout, and merges it into cohort windows (protocol/DRIFT.md).
 *
 * `StatsMessage` validates shape and internal consistency (counts are non-negative integers,
 * `bins.length === edges.length + 1`, `sum(bins) === count`, `min <= max`, every feature accounts
 * for every row, …). `validateStatsMessage` runs it plus the checks that need context (reference
 * layout, clock) and answers with one reason code, suitable as a metric label for dropped messages.
 *
 * @example
 * const r = validateStatsMessage(JSON.parse(payload), { reference: layout, now: new Date(), deviceId });
 * if (!r.ok) droppedStats.inc({ reason: r.reason });
 * else ingest(r.message);
 */
import { z } from 'zod';
import { edgesProblem, sameEdges } from '../sketch/bin-edges.ts';
import type { CategoricalSketch } from '../sketch/categorical-sketch.ts';
import { sketchLayout, type FeatureSetSketch, type SketchLayout } from '../sketch/feature-set-sketch.ts';
import type { NumericSketch } from '../sketch/numeric-sketch.ts';
import { DEVICE_ID_PATTERN } from '../topics.ts';
import { fastStatsMessage, IsoTime } from './stats-fast-path.ts';
import { salvageOverflowedMoments } from './stats-salvage.ts';
import { sketchFromWire } from './stats-wire.ts';

/** Every reason a `stats` (or `telemetry`) payload can be refused for. */
export const STATS_REJECT_REASONS = [
  'schema_version',
  'malformed',
  'negative_count',
  'non_integer_count',
  'invalid_edges',
  'bins_mismatch',
  'count_mismatch',
  'min_gt_max',
  'invalid_moments',
  'window_order',
  'future_window',
  'device_mismatch',
  'missing_feature',
  'unknown_feature',
  'kind_mismatch',
  'edges_mismatch',
  'categories_mismatch',
  'outputs_mismatch',
] as const;
export type StatsRejectReason = (typeof STATS_REJECT_REASONS)[number];

type Ctx = z.core.$RefinementCtx<unknown>;
function fail(ctx: Ctx, reason: StatsRejectReason, message: string, path: PropertyKey[] = []): void {
  ctx.addIssue({ code: 'custom', message, params: { reason }, path: path as (string | number)[] });
}

/**
 * A count: a non-negative integer. The checks carry their reason code so a refusal names it.
 * Exported for the other wire schemas that carry counts.
 */
export const Count = z
  .number()
  .refine(Number.isSafeInteger, { message: 'count must be an integer', params: { reason: 'non_integer_count' }, abort: true })
  .refine((n) => n >= 0, { message: 'count must be >= 0', params: { reason: 'negative_count' } });

const Finite = z.number(); // zod 4 already refuses NaN and ±Infinity

function sum(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}

/** Wire form of `NumericSketch`, with its internal consistency checks. */
export const NumericSketchSchema = z
  .object({
    kind: z.literal('numeric'),
    edges: z.array(Finite).min(1).max(1000),
    bins: z.array(Count).max(1001),
    sums: z.array(Finite).max(1001),
    count: Count,
    nulls: Count,
    nans: Count,
    outOfRange: Count,
    min: Finite.nullable(),
    max: Finite.nullable(),
    mean: Finite,
    m2: Finite,
  })
  .superRefine((s, ctx) => {
    const edges = edgesProblem(s.edges);
    if (edges) return fail(ctx, 'invalid_edges', edges, ['edges']);
    if (s.bins.length !== s.edges.length + 1) return fail(ctx, 'bins_mismatch', `expected ${s.edges.length + 1} bins, got ${s.bins.length}`, ['bins']);
    if (s.sums.length !== s.bins.length) return fail(ctx, 'bins_mismatch', `expected ${s.bins.length} sums, got ${s.sums.length}`, ['sums']);
    if (sum(s.bins) !== s.count) return fail(ctx, 'count_mismatch', 'bins do not add up to count', ['bins']);
    const E = s.edges.length;
    for (let i = 0; i <= E; i++) {
      // A bin's mean must lie in the bin (with float slack): catches shifted or swapped arrays.
      if (s.bins[i] === 0) {
        if (s.sums[i] !== 0) return fail(ctx, 'invalid_moments', `bin ${i} is empty but has a sum`, ['sums', i]);
        continue;
      }
      const mean = s.sums[i] / s.bins[i];
      const lo = i === 0 ? -Infinity : s.edges[i - 1];
      const hi = i === E ? Infinity : s.edges[i];
      const tol = 1e-9 * Math.max(Math.abs(mean), 1);
      if (mean < lo - tol || mean > hi + tol) return fail(ctx, 'invalid_moments', `bin ${i}'s mean lies outside the bin`, ['sums', i]);
    }
    if (s.outOfRange > s.count) return fail(ctx, 'count_mismatch', 'outOfRange exceeds count', ['outOfRange']);
    if (s.count === 0) {
      if (s.min !== null || s.max !== null || s.mean !== 0 || s.m2 !== 0) return fail(ctx, 'invalid_moments', 'an empty sketch has null min/max and zero moments');
      return;
    }
    if (s.min === null || s.max === null) return fail(ctx, 'invalid_moments', 'min/max missing', ['min']);
    if (s.min > s.max) return fail(ctx, 'min_gt_max', `min ${s.min} > max ${s.max}`, ['min']);
    const slack = 1e-9 * Math.max(Math.abs(s.min), Math.abs(s.max), 1);
    if (s.mean < s.min - slack || s.mean > s.max + slack) return fail(ctx, 'invalid_moments', 'mean outside [min, max]', ['mean']);
    if (s.m2 < -slack) return fail(ctx, 'invalid_moments', 'm2 is negative', ['m2']);
  }) satisfies z.ZodType<NumericSketch>;

/** Wire form of `CategoricalSketch`. */
export const CategoricalSketchSchema = z
  .object({
    kind: z.literal('categorical'),
    categories: z.array(z.string()).max(10_000),
    counts: z.array(Count),
    other: Count,
    nulls: Count,
    count: Count,
  })
  .superRefine((s, ctx) => {
    if (new Set(s.categories).size !== s.categories.length) return fail(ctx, 'malformed', 'duplicate categories', ['categories']);
    if (s.counts.length !== s.categories.length) return fail(ctx, 'bins_mismatch', `expected ${s.categories.length} counts, got ${s.counts.length}`, ['counts']);
    if (sum(s.counts) + s.other !== s.count) return fail(ctx, 'count_mismatch', 'counts + other do not add up to count', ['count']);
  }) satisfies z.ZodType<CategoricalSketch>;

/** Either kind of feature sketch, by `kind`. */
export const FeatureSketchSchema = z.discriminatedUnion('kind', [NumericSketchSchema, CategoricalSketchSchema]);

const FeatureName = z.string().min(1).max(200).refine((n) => n !== '__proto__', { message: 'reserved name' });

/** Wire form of `FeatureSetSketch`; also checks that every feature accounts for every row. */
export const FeatureSetSketchSchema = z
  .object({
    features: z.record(FeatureName, FeatureSketchSchema),
    outputs: z.object({
      predictedClass: CategoricalSketchSchema.optional(),
      confidence: NumericSketchSchema.optional(),
      value: NumericSketchSchema.optional(),
    }),
    quality: z.object({
      rows: Count,
      schemaViolations: z.object({ missing: Count, extra: Count, wrongType: Count }),
      outOfRange: Count,
      nans: Count,
    }),
  })
  .superRefine((s, ctx) => {
    // Every row adds exactly one of count/nulls/nans to every feature (see addRow).
    for (const [name, f] of Object.entries(s.features)) {
      const seen = f.kind === 'numeric' ? f.count + f.nulls + f.nans : f.count + f.nulls;
      if (seen !== s.quality.rows) return fail(ctx, 'count_mismatch', `feature ${name} accounts for ${seen} of ${s.quality.rows} rows`, ['features', name]);
    }
    for (const [name, o] of Object.entries(s.outputs)) {
      if (!o) continue;
      const seen = o.kind === 'numeric' ? o.count + o.nulls + o.nans : o.count + o.nulls;
      if (seen > s.quality.rows) return fail(ctx, 'count_mismatch', `output ${name} has more values than rows`, ['outputs', name]);
    }
  }) satisfies z.ZodType<FeatureSetSketch>;


/**
 * The `stats` payload. Prefer `validateStatsMessage`, which also names the reason of a refusal.
 *
 * @example
 * const msg: StatsMessage = { v: 1, deviceId, bundleId, model: { name, version }, windowStart, windowEnd, seq, sketch };
 */
export const StatsMessage = z
  .object({
    v: z.literal(1),
    deviceId: z.string().regex(DEVICE_ID_PATTERN),
    bundleId: z.string().min(1).max(200),
    model: z.object({ name: z.string().min(1).max(200), version: z.number().int().positive() }),
    windowStart: IsoTime,
    windowEnd: IsoTime,
    /** Monotonic per device (survives restarts through the agent's state); the server dedupes on it. */
    seq: z.number().int().nonnegative(),
    sketch: FeatureSetSketchSchema,
  })
  .superRefine((m, ctx) => {
    if (!(Date.parse(m.windowEnd) > Date.parse(m.windowStart))) fail(ctx, 'window_order', 'windowEnd must be after windowStart', ['windowEnd']);
  });
export type StatsMessage = z.infer<typeof StatsMessage>;

export type StatsRejection = { ok: false; reason: StatsRejectReason; message: string; path: PropertyKey[] };
/**
 * `salvaged`: numeric features whose overflowed moments were emptied into `nans` (`stats-salvage.ts`);
 * `sketchBytes`: the sketch's binary form as received (`sketchBase64`), equal to `encodeSketch(message.sketch)`.
 */
export type StatsCheck = { ok: true; message: StatsMessage; salvaged: string[]; sketchBytes?: Buffer } | StatsRejection;

/**
 * The reason code for a failed zod parse: the first issue that carries one, else `malformed`.
 *
 * @example
 * reasonOfIssues(StatsMessage.safeParse(raw).error!.issues).reason // e.g. 'negative_count'
 */
export function reasonOfIssues(issues: readonly z.core.$ZodIssue[]): { reason: StatsRejectReason; message: string; path: PropertyKey[] } {
  const first = issues.find((i) => i.code === 'custom' && typeof i.params?.reason === 'string') ?? issues[0];
  const reason = first?.code === 'custom' && typeof first.params?.reason === 'string' ? (first.params.reason as StatsRejectReason) : 'malformed';
  return { reason, message: first ? `${first.path.join('.') || '(root)'}: ${first.message}` : 'invalid', path: first?.path ?? [] };
}

/**
 * Checks a (structurally valid) sketch against the reference it must have been built on: same
 * features, kinds, bin edges, categories and outputs. Returns `null` when it matches.
 *
 * @example
 * checkSketchAgainstReference(msg.sketch, referenceLayout) // null | { reason: 'edges_mismatch', … }
 */
export function checkSketchAgainstReference(sketch: FeatureSetSketch, reference: SketchLayout | FeatureSetSketch): { reason: StatsRejectReason; message: string; path: PropertyKey[] } | null {
  const layout: SketchLayout = 'quality' in reference ? sketchLayout(reference) : reference;
  for (const name of Object.keys(layout.features)) {
    if (!Object.hasOwn(sketch.features, name)) return { reason: 'missing_feature', message: `feature ${name} missing`, path: ['sketch', 'features', name] };
  }
  for (const [name, f] of Object.entries(sketch.features)) {
    const path = ['sketch', 'features', name];
    if (!Object.hasOwn(layout.features, name)) return { reason: 'unknown_feature', message: `feature ${name} is not in the reference`, path };
    const ref = layout.features[name];
    if (ref.kind !== f.kind) return { reason: 'kind_mismatch', message: `feature ${name} is ${f.kind}, reference says ${ref.kind}`, path };
    if (ref.kind === 'numeric' && f.kind === 'numeric' && !sameEdges(ref.edges, f.edges)) return { reason: 'edges_mismatch', message: `feature ${name} uses other bin edges`, path };
    if (ref.kind === 'categorical' && f.kind === 'categorical' && (ref.categories.length !== f.categories.length || ref.categories.some((c, i) => c !== f.categories[i]))) {
      return { reason: 'categories_mismatch', message: `feature ${name} uses other categories`, path };
    }
  }
  const o = sketch.outputs;
  const path = ['sketch', 'outputs'];
  const lo = layout.outputs;
  if (lo.task === 'classification') {
    if (!o.predictedClass || !o.confidence || o.value) return { reason: 'outputs_mismatch', message: 'expected predictedClass and confidence', path };
    if (o.predictedClass.categories.length !== lo.numClasses || o.predictedClass.categories.some((c, i) => c !== String(i))) {
      return { reason: 'categories_mismatch', message: 'predicted classes differ from the reference', path: [...path, 'predictedClass'] };
    }
  } else if (lo.task === 'regression') {
    if (!o.value || o.predictedClass || o.confidence) return { reason: 'outputs_mismatch', message: 'expected value', path };
    if (!sameEdges(lo.edges, o.value.edges)) return { reason: 'edges_mismatch', message: 'output value uses other bin edges', path: [...path, 'value'] };
  } else if (o.value || o.predictedClass || o.confidence) {
    return { reason: 'outputs_mismatch', message: 'the reference has no outputs', path };
  }
  return null;
}

export interface StatsCheckOptions {
  /** Reference layout (or reference sketch) of the model version the message names. */
  reference?: SketchLayout | FeatureSetSketch;
  /** Current time, for the future-window check; default `new Date()`. */
  now?: Date;
  /** Accepted clock skew for windows ending in the future; default 5 minutes. */
  maxClockSkewMs?: number;
  /** The device id from the topic; the payload must agree. */
  deviceId?: string;
}

/**
 * Parses and checks a `stats` payload. Old windows are accepted (the agent's offline buffer
 * sends them late); windows ending beyond `now + maxClockSkewMs` are not (a device with a bad clock
 * would otherwise poison future cohort windows).
 *
 * @example
 * validateStatsMessage(JSON.parse(buf.toString()), { reference: layout, deviceId })
 */
export function validateStatsMessage(raw: unknown, opts: StatsCheckOptions = {}): StatsCheck {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { ok: false, reason: 'malformed', message: 'payload is not an object', path: [] };
  if ((raw as { v?: unknown }).v !== 1) return { ok: false, reason: 'schema_version', message: `unsupported v ${JSON.stringify((raw as { v?: unknown }).v)}`, path: ['v'] };
  // The binary form (stats-wire.ts) decodes to the object form and gets the same checks. Only agents
  // from before it overflowed moments: a feature whose moments overflowed costs that feature's values, not the window.
  let bytes: Buffer | undefined;
  let salvage: { payload: unknown; features: string[] };
  if ('sketchBase64' in raw) {
    const wire = sketchFromWire(raw as Record<string, unknown>);
    if ('error' in wire) return { ok: false, reason: 'malformed', message: wire.error, path: ['sketchBase64'] };
    bytes = wire.bytes;
    salvage = { payload: wire.payload, features: [] };
  } else salvage = salvageOverflowedMoments(raw);
  // The hand-written check accepts the common well-formed window; anything else gets the schema's verdict.
  let m: StatsMessage | null = fastStatsMessage(salvage.payload);
  if (!m) {
    const parsed = StatsMessage.safeParse(salvage.payload);
    if (!parsed.success) return { ok: false, ...reasonOfIssues(parsed.error.issues) };
    m = parsed.data;
  }
  if (opts.deviceId !== undefined && m.deviceId !== opts.deviceId) return { ok: false, reason: 'device_mismatch', message: 'deviceId differs from the topic', path: ['deviceId'] };
  const now = (opts.now ?? new Date()).getTime();
  if (Date.parse(m.windowEnd) > now + (opts.maxClockSkewMs ?? 5 * 60_000)) return { ok: false, reason: 'future_window', message: 'window ends in the future', path: ['windowEnd'] };
  if (opts.reference) {
    const bad = checkSketchAgainstReference(m.sketch, opts.reference);
    if (bad) return { ok: false, ...bad };
  }
  return { ok: true, message: m, salvaged: salvage.features, sketchBytes: bytes };
}
