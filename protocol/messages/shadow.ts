/**
 * Shadow evaluation as a device reports it (inside its retained `reported` document, field `shadow`):
 * a candidate bundle named in the signed manifest runs beside the active one on a share of live
 * requests, off the request path, and the two answers are compared. The device reports the last
 * closed window and the totals since the candidate was loaded; the server's shadow gates read the
 * totals (rollouts), so a lost or coalesced report loses nothing.
 *
 * Comparison per output tensor: `top1` for classifiers (rows whose arg-max matches, plus the class
 * counts of each model: the output distribution), `mad` for regressors (sum of |active − candidate|
 * over the values, and each model's sum, so means follow exactly when windows are added).
 *
 * @example
 * const agreement = top1.matches / top1.rows; const mad = m.absDiffSum / m.values;
 */
import { z } from 'zod';

/** What this agent can do beyond the base update path; the server refuses features a device lacks. */
export const AGENT_CAPABILITIES = ['shadow'] as const;
export type AgentCapability = (typeof AGENT_CAPABILITIES)[number];

const Count = z.number().int().nonnegative();
const Ms = z.number().nonnegative();
/** At most this many classes are counted per output (bounds the message). */
export const MAX_SHADOW_CLASSES = 256;
export const MAX_SHADOW_OUTPUTS = 16;

export const ShadowOutput = z.discriminatedUnion('kind', [
  z.object({
    output: z.string().max(128),
    kind: z.literal('top1'),
    rows: Count,
    matches: Count,
    /** Top-1 class counts of the active model and of the candidate (index = class). */
    activeClasses: z.array(Count).max(MAX_SHADOW_CLASSES),
    candidateClasses: z.array(Count).max(MAX_SHADOW_CLASSES),
  }),
  z.object({
    output: z.string().max(128),
    kind: z.literal('mad'),
    values: Count,
    absDiffSum: z.number().nonnegative(),
    activeSum: z.number(),
    candidateSum: z.number(),
  }),
]);
export type ShadowOutput = z.infer<typeof ShadowOutput>;

const Quantiles = z.object({ p50: Ms, p95: Ms });

export const ShadowFigures = z.object({
  /** Requests run on both models and compared. */
  compared: Count,
  /** Requests sampled for the shadow but dropped because the candidate was still busy (bounded queue). */
  skipped: Count,
  /** Requests the candidate failed on (the active answer was fine). */
  candidateErrors: Count,
  outputs: z.array(ShadowOutput).max(MAX_SHADOW_OUTPUTS),
  /** Time in each runtime for the compared requests (preprocess + inference + postprocess), null before any. */
  latencyMs: z.object({ active: Quantiles, candidate: Quantiles }).nullable(),
});
export type ShadowFigures = z.infer<typeof ShadowFigures>;

export const ShadowReport = z.object({
  rolloutId: z.string().max(64),
  /** The candidate bundle. */
  bundleId: z.string().max(128),
  /** loading: downloading / verifying / staging the candidate; failed: it could not be loaded (reason). */
  state: z.enum(['loading', 'shadowing', 'failed']),
  reason: z.string().max(2000).optional(),
  since: z.string(),
  share: z.number().gt(0).max(1),
  /** The last closed window. */
  window: ShadowFigures.extend({ start: z.string(), end: z.string() }).nullable(),
  /** Everything since `since`. */
  total: ShadowFigures,
});
export type ShadowReport = z.infer<typeof ShadowReport>;
