/**
 * Why the agent rejected a key list, a manifest or a downloaded file. These codes are part of the
 * contract: the agent reports them in `reported.lastError`, the server counts them, operators read
 * them. Add codes; never rename one.
 *
 * @example
 * const ReportedError = z.object({ reason: z.enum([...MANIFEST_REJECT_REASONS, ...FILE_REJECT_REASONS]) });
 */

/**
 * Reasons `verifyKeyList` gives.
 *
 * @example
 * z.enum(KEYLIST_REJECT_REASONS)
 */
export const KEYLIST_REJECT_REASONS = ['MALFORMED', 'UNKNOWN_ROOT', 'BAD_ROOT_SIGNATURE', 'KEYLIST_EXPIRED', 'KEYLIST_ROLLBACK'] as const;
export type KeyListRejectReason = (typeof KEYLIST_REJECT_REASONS)[number];

/**
 * Reasons `verifyManifest` gives.
 *
 * @example
 * z.enum(MANIFEST_REJECT_REASONS)
 */
export const MANIFEST_REJECT_REASONS = [
  'MALFORMED',
  'UNKNOWN_KEY',
  'BAD_SIGNATURE',
  'THRESHOLD_NOT_MET',
  'EXPIRED',
  'ROLLBACK',
  'WRONG_DEVICE',
  'AGENT_TOO_OLD',
  'KEYLIST_EXPIRED',
] as const;
export type ManifestRejectReason = (typeof MANIFEST_REJECT_REASONS)[number];

/**
 * Reasons a downloaded file fails verification (`TOO_LARGE` is the capped hasher's error code).
 *
 * @example
 * z.enum(FILE_REJECT_REASONS)
 */
export const FILE_REJECT_REASONS = ['SIZE_MISMATCH', 'HASH_MISMATCH', 'TOO_LARGE'] as const;
export type FileRejectReason = (typeof FILE_REJECT_REASONS)[number];

/**
 * A verification verdict: the checked value, or a reason code with a human-readable message.
 *
 * @example
 * const r: Verdict<{ manifest: DeploymentManifest }, ManifestRejectReason> = verifyManifest(env, opts);
 * if (!r.ok) report(r.reason, r.message);
 */
export type Verdict<T extends object, R extends string> = ({ ok: true } & T) | { ok: false; reason: R; message: string };

/**
 * Builds a rejection verdict.
 *
 * @example
 * return reject('EXPIRED', `manifest expired at ${payload.expiresAt}`);
 */
export function reject<R extends string>(reason: R, message: string): { ok: false; reason: R; message: string } {
  return { ok: false, reason, message };
}
