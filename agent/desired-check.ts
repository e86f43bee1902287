// What to do with one `desired` message, decided without side effects: drop it (malformed), ignore
// it (already applied, judged or under way; no manifest), reject it with a reason code, or accept it
// as an update job. Order follows "Bundles and trust": key list against the pinned root first (a
// newer verified list is kept even if the manifest is then refused), then the manifest's signatures,
// device, expiry, counter and agent version, then names the agent reserves. The message's schema
// validates both envelopes (signature entries included) once; a message that fails it is dropped and
// counted like any malformed one, and the verifiers take the validated envelopes as they are (they
// were validated three times per message: a fan-out's per-device cost).
import { createHash } from 'node:crypto';
import { canonicalBytes } from '../firmware-bundles/canonical-json.ts';
import { trustedKeyList, verifyKeyListEnvelope, type KeyList } from '../firmware-bundles/key-list.ts';
import { tryCanonicalBytes } from '../firmware-bundles/envelope.ts';
import type { PublicKeyRef } from '../firmware-bundles/keys.ts';
import { verifyManifestEnvelope, type DeploymentManifest } from '../firmware-bundles/manifest.ts';
import { DesiredMessage } from '../protocol/messages/desired.ts';
import { bundleName, KEYLIST_FILE, MANIFEST_FILE, META_FILE } from './bundle-store.ts';

type Envelope = DesiredMessage['keylist'];

/** A verified manifest on its way through the update path. */
export interface UpdateJob {
  manifest: DeploymentManifest;
  manifestEnvelope: unknown;
  /** The key list that verified it (stored next to the bundle for start-up re-verification). */
  keylistEnvelope: unknown;
  /** sha256 of the canonical manifest payload: "the same manifest" across deliveries. */
  digest: string;
  /** Directory name under staging/ and bundles/. */
  name: string;
}

export interface DesiredContext {
  pinnedRoot: PublicKeyRef | null;
  deviceId: string;
  agentVersion: string;
  /** The newest key list verified so far (envelope), if any. */
  storedKeylist: Envelope | null;
  /** Highest manifest counter ever activated here: anything not above it is a rollback. */
  floor: number;
  /** Digest of a manifest whose bundle broke on disk: it may be installed again. */
  reinstall: string | null;
  /** Whether another already-handled manifest may be installed again (activated, newest, no longer serving). */
  mayReinstall?(digest: string): boolean;
  /** Whether a manifest digest is already active, judged, running or waiting. */
  known(digest: string): boolean;
  now: Date;
}

interface Common {
  /** A newer key list that verified: persist it whatever happens to the manifest. */
  keylistToStore?: Envelope;
}
export type DesiredVerdict =
  | { kind: 'drop'; why: string }
  | (Common & { kind: 'ignore'; why: string })
  | (Common & { kind: 'reject'; code: string; message: string; digest: string | null; counter?: number; bundleId: string })
  | (Common & { kind: 'accept'; job: UpdateJob });

/** Files the agent writes into a bundle directory itself; a manifest may not name them. */
const RESERVED_FILES: ReadonlySet<string> = new Set([MANIFEST_FILE, KEYLIST_FILE, META_FILE]);

/** sha256 of a payload's canonical JSON, or null if it has none. */
export function manifestDigest(signed: unknown): string | null {
  try {
    return createHash('sha256').update(canonicalBytes(signed)).digest('hex');
  } catch {
    return null;
  }
}

/** The stored (trusted) key list, parsed once per stored object; undefined if it does not parse. */
function storedList(signed: unknown): KeyList | undefined {
  try {
    return trustedKeyList(signed);
  } catch {
    return undefined;
  }
}

export function checkDesired(payload: Buffer, ctx: DesiredContext): DesiredVerdict {
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch {
    return { kind: 'drop', why: 'not JSON' };
  }
  // Both envelopes' shapes are validated here, once: the verifiers below take them as they are.
  const msg = DesiredMessage.safeParse(json);
  if (!msg.success) return { kind: 'drop', why: msg.error.issues[0]?.message ?? 'invalid' };
  const { keylist: keylistEnvelope, manifest: manifestEnvelope } = msg.data;
  // The manifest's canonical bytes, made once: hashed here (its identity) and verified below.
  const manifestBytes = manifestEnvelope ? tryCanonicalBytes(manifestEnvelope.signed) : null;
  const digest = manifestBytes ? createHash('sha256').update(manifestBytes).digest('hex') : null;
  const claimed = manifestEnvelope?.signed as { counter?: unknown; bundle?: { id?: unknown } } | undefined;
  const counter = typeof claimed?.counter === 'number' && Number.isInteger(claimed.counter) ? claimed.counter : undefined;
  const bundleId = String(claimed?.bundle?.id ?? 'unknown');
  const reinstall = digest !== null && (digest === ctx.reinstall || (ctx.mayReinstall?.(digest) ?? false));
  // Already applied, judged or under way: a retained message redelivered on reconnect. The exception
  // is the manifest of a bundle that broke on disk, which the desired state still names.
  const known = digest !== null && ctx.known(digest) && !reinstall;
  const reject = (code: string, message: string, extra: Common = {}): DesiredVerdict =>
    known ? { kind: 'ignore', why: `already handled (${code})`, ...extra } : { kind: 'reject', code, message, digest, counter, bundleId, ...extra };

  // 1. The key list, against the pinned root.
  if (!ctx.pinnedRoot) return manifestEnvelope ? reject('UNKNOWN_ROOT', 'no trust root pinned on this device (restart the agent with --trust-root)') : { kind: 'ignore', why: 'no manifest' };
  const current = ctx.storedKeylist ? storedList(ctx.storedKeylist.signed) : undefined;
  const kl = verifyKeyListEnvelope(keylistEnvelope, { pinnedRootKeys: [ctx.pinnedRoot], current, now: ctx.now });
  let keylist: KeyList;
  let usedKeylist: Envelope = keylistEnvelope;
  const extra: Common = {};
  if (kl.ok) {
    keylist = kl.keylist;
    // The envelope that was verified first with this content (one shared copy, see verifyKeyListEnvelope).
    usedKeylist = kl.envelope;
    if (!current || kl.keylist.version > current.version) extra.keylistToStore = kl.envelope;
  } else if (kl.reason === 'KEYLIST_ROLLBACK' && current && Date.parse(current.expiresAt) > ctx.now.getTime()) {
    // An older list than the one we trust came along: keep trusting ours (it cannot be rolled back).
    keylist = current;
    usedKeylist = ctx.storedKeylist!;
  } else {
    return manifestEnvelope ? reject(kl.reason, `key list: ${kl.message}`) : { kind: 'ignore', why: `no manifest; key list refused: ${kl.reason}` };
  }
  if (!manifestEnvelope) return { kind: 'ignore', why: 'no manifest: keep what runs', ...extra };
  if (!digest) return reject('MALFORMED', 'manifest payload has no canonical JSON form', extra);
  if (known) return { kind: 'ignore', why: 'already handled', ...extra };

  // 2. The manifest: signatures first, then device, expiry, counter, agent version.
  let floor = ctx.floor;
  if (reinstall && counter !== undefined) floor = Math.min(floor, counter - 1);
  const mv = verifyManifestEnvelope(manifestEnvelope, { keylist, deviceId: ctx.deviceId, activeCounter: floor > 0 ? floor : null, agentVersion: ctx.agentVersion, now: ctx.now, payloadBytes: manifestBytes! });
  if (!mv.ok) return reject(mv.reason, mv.message, extra);
  const clash = mv.manifest.files.find((f) => RESERVED_FILES.has(f.path) || f.path.endsWith('.part'));
  if (clash) return reject('INVALID_BUNDLE', `bundle file name ${clash.path} is reserved by the agent`, extra);
  return {
    kind: 'accept',
    job: { manifest: mv.manifest, manifestEnvelope, keylistEnvelope: usedKeylist, digest, name: bundleName(mv.manifest.counter, digest) },
    ...extra,
  };
}
