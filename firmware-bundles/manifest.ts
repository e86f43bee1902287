/**
 * The deployment manifest: the signed desired state of one device. It names the bundle's files by
 * sha256 and size, the device it is for, an expiry and a per-device counter, and is signed by release
 * keys from the root-signed key list. Each field closes one attack from DESIGN.md "Bundles and trust":
 * files by hash (tampering, endless data), deviceId/cohort (mix-and-match), expiresAt (freeze),
 * counter (rollback), signatures + threshold (forgery, one stolen key when threshold > 1).
 *
 * @example
 * const env = signManifest(createManifest({ deviceId, bundle, files, counter: 7, keylistVersion: 2, expiresAt }), [releaseKey]);
 * const r = verifyManifest(env, { keylist, deviceId, activeCounter: 6, agentVersion: '0.1.0', now: new Date() });
 * if (!r.ok) report(r.reason, r.message);
 */
import { z } from 'zod';
import { DEVICE_ID_PATTERN } from '../protocol/topics.ts';
import { SketchLayoutSchema } from './definition.ts';
import { Envelope, checkSignatures, issuesLine, signEnvelope, tryCanonicalBytes, withoutUndefined, type LoadedSigningKey, type SignedEnvelope, type SigningKey } from './envelope.ts';
import { releaseKeyMap, type KeyList } from './key-list.ts';
import { reject, type ManifestRejectReason, type Verdict } from './reasons.ts';
import { compareVersions } from './semver.ts';

/**
 * A file name the agent may create in its bundle directory: no separators, no leading dot (and the
 * schema also refuses `..` anywhere).
 *
 * @example
 * SAFE_FILE_NAME.test('model.onnx') // true; '../x' and 'a/b' are false
 */
export const SAFE_FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Files every bundle has: the model and its resolved definition.
 *
 * @example
 * REQUIRED_BUNDLE_FILES.every((p) => manifest.files.some((f) => f.path === p))
 */
export const REQUIRED_BUNDLE_FILES = ['model.onnx', 'bundle.json'] as const;

/**
 * Most files one manifest may name.
 *
 * @example
 * manifest.files.length <= MAX_MANIFEST_FILES
 */
export const MAX_MANIFEST_FILES = 64;

/**
 * One bundle file as the manifest signs it.
 *
 * @example
 * ManifestFile.parse({ path: 'model.onnx', sha256: 'ab…', size: 18_204 })
 */
export const ManifestFile = z.object({
  path: z
    .string()
    .regex(SAFE_FILE_NAME, 'a plain file name (letters, digits, . _ -)')
    .refine((p) => !p.includes('..'), "must not contain '..'"),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits'),
  size: z.number().int().positive(),
});
export type ManifestFile = z.infer<typeof ManifestFile>;

const Timestamp = z.iso.datetime();

/**
 * Runtime settings the server gives a device along with its bundle. They ride in the signed manifest
 * because they are security-relevant (sample capture ships raw inputs off the device) and must not be
 * replayable: a new setting means a new counter. Absent fields keep the agent's defaults.
 *
 * @example
 * AgentConfig.parse({ telemetryIntervalS: 10, statsWindowS: 60 })
 */
export const AgentConfig = z.object({
  /** Seconds between `telemetry` messages (default 10). */
  telemetryIntervalS: z.number().int().min(1).max(3600).optional(),
  /** Length of one `stats` window in seconds (default 60). */
  statsWindowS: z.number().int().min(5).max(86_400).optional(),
  /**
   * Opt-in sample capture (never on by default): at most `maxPerMinute` request inputs + outputs are
   * kept and uploaded over HTTP in batches of `batchSize`.
   */
  sampleCapture: z
    .object({
      enabled: z.boolean(),
      maxPerMinute: z.number().int().min(1).max(6000).default(60),
      batchSize: z.number().int().min(1).max(1000).default(50),
    })
    .optional(),
  /**
   * The layout to sketch `stats` windows on: the version's current reference layout, sent when the
   * bundle does not ship it (a reference added or replaced after the build). Preferred over the
   * bundle's own, so monitoring starts on the running fleet without a rebuild or redeploy.
   */
  statsLayout: SketchLayoutSchema.optional(),
});
export type AgentConfig = z.infer<typeof AgentConfig>;

/** Which bundle a manifest names: its id and name, and the model version inside. */
const BundleRef = z.object({
  id: z.string().min(1).max(128),
  name: z.string().min(1).max(128),
  model: z.object({ name: z.string().min(1).max(128), version: z.number().int().positive() }),
});

/** A bundle's file list: unique paths (two entries for one path would let the agent verify one and load the other), the required files present. */
function checkBundleFiles(files: Array<{ path: string }>, ctx: z.RefinementCtx): void {
  const paths = files.map((f) => f.path);
  if (new Set(paths).size !== paths.length) ctx.addIssue({ code: 'custom', path: ['files'], message: 'duplicate file path' });
  for (const required of REQUIRED_BUNDLE_FILES) {
    if (!paths.includes(required)) ctx.addIssue({ code: 'custom', path: ['files'], message: `missing ${required}` });
  }
}

/**
 * A shadow candidate: a second bundle the device loads beside the one it serves and runs on a share
 * of live requests off the request path, to compare answers — never to answer. It rides in the
 * signed manifest like the active bundle (files by hash and size, same signatures, same counter), so
 * nothing unsigned ever runs on a device, and a manifest without it ends the shadow.
 *
 * @example
 * ShadowCandidate.parse({ rolloutId: 'rol_1', share: 0.2, windowS: 30, bundle: { id: 'bnd_2', name: 'tabular-demo', model: { name: 'tabular-demo', version: 2 } }, files, minAgentVersion: '0.1.0' })
 */
export const ShadowCandidate = z
  .object({
    /** The rollout evaluating the candidate (reports name it, so the server counts them to that rollout). */
    rolloutId: z.string().min(1).max(64),
    /** Share of live requests also run on the candidate, in (0, 1]. */
    share: z.number().gt(0).max(1),
    /** Seconds per comparison window (each closed window is reported). */
    windowS: z.number().int().min(1).max(3600),
    bundle: BundleRef,
    files: z.array(ManifestFile).min(1).max(MAX_MANIFEST_FILES),
    minAgentVersion: z.string().regex(/^\d+\.\d+\.\d+$/, 'x.y.z'),
  })
  .superRefine((c, ctx) => checkBundleFiles(c.files, ctx));
export type ShadowCandidate = z.infer<typeof ShadowCandidate>;

/**
 * The signed payload of a deployment manifest. Refines: unique paths, model.onnx and bundle.json
 * present, expiresAt after issuedAt.
 *
 * @example
 * DeploymentManifest.safeParse(envelope.signed).success
 */
export const DeploymentManifest = z
  .object({
    v: z.literal(1),
    type: z.literal('deployment'),
    deviceId: z.string().regex(DEVICE_ID_PATTERN, 'a device id'),
    cohort: z.string().min(1).max(128).optional(),
    bundle: BundleRef,
    files: z.array(ManifestFile).min(1).max(MAX_MANIFEST_FILES),
    minAgentVersion: z.string().regex(/^\d+\.\d+\.\d+$/, 'x.y.z'),
    issuedAt: Timestamp,
    expiresAt: Timestamp,
    /** Strictly increasing per device; the agent refuses anything not above what it runs. */
    counter: z.number().int().positive(),
    /** Version of the key list the signers belong to (lets an agent say it needs a newer list). */
    keylistVersion: z.number().int().positive(),
    agentConfig: AgentConfig.optional(),
    /** A candidate to evaluate in shadow beside the bundle above (which keeps answering). */
    shadow: ShadowCandidate.optional(),
  })
  .superRefine((m, ctx) => {
    checkBundleFiles(m.files, ctx);
    if (Date.parse(m.expiresAt) <= Date.parse(m.issuedAt)) ctx.addIssue({ code: 'custom', path: ['expiresAt'], message: 'must be after issuedAt' });
  });
export type DeploymentManifest = z.infer<typeof DeploymentManifest>;

/**
 * Builds and validates a manifest payload; `issuedAt` defaults to now.
 *
 * @example
 * const payload = createManifest({
 *   deviceId: 'dev_abcdefgh', bundle: { id: 'b_1', name: 'tabular-demo', model: { name: 'tabular-demo', version: 3 } },
 *   files: build.files, minAgentVersion: '0.1.0', counter: 12, keylistVersion: 2, expiresAt: new Date(Date.now() + 7 * 86400e3),
 * });
 */
export function createManifest(input: {
  deviceId: string;
  cohort?: string;
  bundle: DeploymentManifest['bundle'];
  files: Array<{ path: string; sha256: string; size: number }>;
  minAgentVersion?: string;
  counter: number;
  keylistVersion: number;
  expiresAt: Date;
  agentConfig?: AgentConfig;
  shadow?: ShadowCandidate;
  now?: Date;
}): DeploymentManifest {
  return withoutUndefined(
    DeploymentManifest.parse({
      v: 1,
      type: 'deployment',
      deviceId: input.deviceId,
      cohort: input.cohort,
      bundle: input.bundle,
      // Only the three signed fields: builder output also carries the bytes.
      files: input.files.map(({ path, sha256, size }) => ({ path, sha256, size })),
      minAgentVersion: input.minAgentVersion ?? '0.1.0',
      issuedAt: (input.now ?? new Date()).toISOString(),
      expiresAt: input.expiresAt.toISOString(),
      counter: input.counter,
      keylistVersion: input.keylistVersion,
      agentConfig: input.agentConfig,
      shadow: input.shadow && { ...input.shadow, files: input.shadow.files.map(({ path, sha256, size }) => ({ path, sha256, size })) },
    }),
  );
}

/**
 * Signs a manifest with release keys (as many as the key list's threshold asks for). Throws a
 * ZodError if the payload is invalid: a device would reject it anyway.
 *
 * @example
 * const envelope = signManifest(payload, [{ keyid: releaseB.keyid, privateKeyPem: releaseBPem }]);
 * mqtt.publish(deviceTopic(deviceId, 'desired'), JSON.stringify(envelope), { qos: 1, retain: true });
 */
export function signManifest(payload: DeploymentManifest, releaseKeys: Array<SigningKey | LoadedSigningKey>): SignedEnvelope<DeploymentManifest> {
  return signEnvelope(withoutUndefined(DeploymentManifest.parse(payload)), releaseKeys);
}

/** Options of `verifyManifest`: what the device knows about itself. */
export interface VerifyManifestOptions {
  /** The key list the agent trusts, already verified with `verifyKeyList`. */
  keylist: KeyList;
  /** This device's id. */
  deviceId: string;
  /** This device's cohort, if it knows one; a manifest naming another cohort is refused. */
  cohort?: string;
  /**
   * Counter of the manifest the device runs, or null if none. A redelivered copy of the active
   * manifest has an equal counter and fails with ROLLBACK, so compare counters before verifying
   * to treat it as "already applied".
   */
  activeCounter: number | null;
  agentVersion: string;
  now: Date;
  /** The payload's canonical bytes when the caller already made them (the agent hashes them too). */
  payloadBytes?: Uint8Array;
}

/**
 * Verifies a received manifest envelope. Signatures are checked before anything the payload says is
 * believed, so a forged manifest reports a signature reason, not e.g. WRONG_DEVICE.
 *
 * Signature reasons: BAD_SIGNATURE if any listed key's signature fails (the payload was altered);
 * otherwise UNKNOWN_KEY if no signature is by a listed key; otherwise THRESHOLD_NOT_MET.
 *
 * @example
 * const r = verifyManifest(JSON.parse(msg.toString()), { keylist, deviceId, activeCounter: state.counter, agentVersion: AGENT_VERSION, now: new Date() });
 * if (r.ok) reconciler.apply(r.manifest);
 */
export function verifyManifest(envelope: unknown, opts: VerifyManifestOptions): Verdict<{ manifest: DeploymentManifest }, ManifestRejectReason> {
  const env = Envelope.safeParse(envelope);
  if (!env.success) return reject('MALFORMED', `manifest envelope: ${issuesLine(env.error)}`);
  return verifyManifestEnvelope(env.data, opts);
}

/**
 * `verifyManifest` for an envelope already validated by `Envelope` (a `desired` message's schema
 * validates it): the agent's per-message path validates each envelope once, not twice.
 *
 * @example
 * const msg = DesiredMessage.parse(json);
 * if (msg.manifest) verifyManifestEnvelope(msg.manifest, { keylist, deviceId, activeCounter: 6, agentVersion: '0.1.0', now: new Date() });
 */
export function verifyManifestEnvelope(env: Envelope, opts: VerifyManifestOptions): Verdict<{ manifest: DeploymentManifest }, ManifestRejectReason> {
  const bytes = opts.payloadBytes ?? tryCanonicalBytes(env.signed);
  if (!bytes) return reject('MALFORMED', 'manifest payload has no canonical JSON form');
  const parsed = DeploymentManifest.safeParse(env.signed);
  if (!parsed.success) return reject('MALFORMED', `manifest: ${issuesLine(parsed.error)}`);
  const m = parsed.data;
  const { keylist, now } = opts;

  // With an expired key list no signature can be trusted: the device freezes until it gets a new one.
  if (Date.parse(keylist.expiresAt) <= now.getTime()) return reject('KEYLIST_EXPIRED', `key list v${keylist.version} expired at ${keylist.expiresAt}`);

  const check = checkSignatures(env, releaseKeyMap(keylist), bytes);
  if (check.valid.size < keylist.threshold) {
    if (check.bad.length > 0) return reject('BAD_SIGNATURE', `signature by ${short(check.bad[0])} does not verify`);
    const hint = m.keylistVersion > keylist.version ? ` (signed under key list v${m.keylistVersion}, device has v${keylist.version})` : '';
    if (check.valid.size === 0 && check.unknown.length > 0) {
      return reject('UNKNOWN_KEY', `signed by ${check.unknown.map(short).join(', ')}, not in key list v${keylist.version}${hint}`);
    }
    return reject('THRESHOLD_NOT_MET', `${check.valid.size} valid signature(s) from distinct release keys, threshold is ${keylist.threshold}${hint}`);
  }

  if (m.deviceId !== opts.deviceId) return reject('WRONG_DEVICE', `manifest is for ${m.deviceId}, this is ${opts.deviceId}`);
  if (opts.cohort !== undefined && m.cohort !== undefined && m.cohort !== opts.cohort) {
    return reject('WRONG_DEVICE', `manifest is for cohort ${m.cohort}, this device is in ${opts.cohort}`);
  }
  if (Date.parse(m.expiresAt) <= now.getTime()) return reject('EXPIRED', `manifest expired at ${m.expiresAt}`);
  if (opts.activeCounter !== null && m.counter <= opts.activeCounter) {
    return reject('ROLLBACK', `manifest counter ${m.counter} is not above the active ${opts.activeCounter}`);
  }
  if (compareVersions(opts.agentVersion, m.minAgentVersion) < 0) {
    return reject('AGENT_TOO_OLD', `bundle needs agent ${m.minAgentVersion}, this is ${opts.agentVersion}`);
  }
  return { ok: true, manifest: m };
}

function short(keyid: string): string {
  return keyid.slice(0, 12);
}
