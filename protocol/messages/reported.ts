/**
 * `reported` (retained, device → server): what the device runs now and where its update stands.
 * Every update ends in a terminal state (`active`, `failed`, `rolled_back`) with a reason code.
 *
 * @example
 * ReportedMessage.parse({ v: 1, at, agentVersion: '0.1.0', state: 'active', active: {...}, desired: null, lastError: null, transitions: [] });
 */
import { z } from 'zod';
import { ShadowReport } from './shadow.ts';
import { UPDATE_STATES } from './update-states.ts';

export { TERMINAL_STATES, UPDATE_STATES, type UpdateState } from './update-states.ts';

/** Why an update failed. Manifest/key-list reasons come from firmware-bundles; the rest from the agent. */
export const UPDATE_FAILURE_CODES = [
  // key list and manifest (firmware-bundles/reasons.ts)
  'MALFORMED',
  'UNKNOWN_ROOT',
  'BAD_ROOT_SIGNATURE',
  'KEYLIST_EXPIRED',
  'KEYLIST_ROLLBACK',
  'UNKNOWN_KEY',
  'BAD_SIGNATURE',
  'THRESHOLD_NOT_MET',
  'EXPIRED',
  'ROLLBACK',
  'WRONG_DEVICE',
  'AGENT_TOO_OLD',
  // files
  'SIZE_MISMATCH',
  'HASH_MISMATCH',
  'TOO_LARGE',
  'DOWNLOAD_FAILED',
  // staging and activation
  'INVALID_BUNDLE',
  'MODEL_LOAD_FAILED',
  'SMOKE_TEST_FAILED',
  'ACTIVATION_FAILED',
  'PROBATION_FAILED',
] as const;
export type UpdateFailureCode = (typeof UPDATE_FAILURE_CODES)[number];

export const BundleRef = z.object({
  bundleId: z.string(),
  bundleName: z.string(),
  model: z.object({ name: z.string(), version: z.number().int() }),
  counter: z.number().int().nonnegative(),
  modelSha256: z.string(),
});
export type BundleRef = z.infer<typeof BundleRef>;

export const ReportedMessage = z.object({
  v: z.literal(1),
  at: z.string().datetime({ offset: true }),
  agentVersion: z.string(),
  state: z.enum(UPDATE_STATES),
  active: BundleRef.extend({ activatedAt: z.string() }).nullable(),
  /** The manifest being worked on (or last worked on). */
  desired: z.object({ bundleId: z.string(), counter: z.number().int() }).nullable(),
  progress: z.object({ bytes: z.number().nonnegative(), totalBytes: z.number().nonnegative() }).optional(),
  /** With `downloading`: the update waits out its download splay until then (agent --download-splay-ms); absent once it fetches. */
  downloadWaitUntil: z.string().datetime({ offset: true }).optional(),
  lastError: z.object({ code: z.string(), message: z.string().max(2000), at: z.string(), counter: z.number().int().optional() }).nullable(),
  /** Most recent transitions, oldest first (bounded). */
  transitions: z.array(z.object({ state: z.enum(UPDATE_STATES), at: z.string(), counter: z.number().int().optional(), reason: z.string().optional() })).max(50),
  keylistVersion: z.number().int().nonnegative().optional(),
  /**
   * Highest manifest counter ever activated on this device (its rollback floor). A server restored
   * from an older backup signs its next manifest above it instead of being refused as a rollback.
   */
  highestCounter: z.number().int().nonnegative().max(2 ** 50).optional(),
  /** Features beyond the base update path (e.g. `shadow`); absent on agents older than them. */
  capabilities: z.array(z.string().max(32)).max(32).optional(),
  /** Shadow evaluation of a candidate named in the signed manifest (see shadow.ts). */
  shadow: ShadowReport.nullable().optional(),
});
export type ReportedMessage = z.infer<typeof ReportedMessage>;
