/**
 * The key list: the root-signed set of release keys allowed to sign deployment manifests, with a
 * threshold, an expiry and a monotonic version (TUF's root → targets delegation, reduced to what a
 * fleet needs). The root key stays offline; agents pin its public key.
 *
 * Rotation is a new key list version that adds the new release key and drops the old one. Agents
 * accept it because the pinned root signed it, so no device is touched by hand; from then on
 * manifests signed by the dropped key fail with UNKNOWN_KEY.
 *
 * @example
 * const v1 = createKeyList({ version: 1, root, keys: [releaseA], expiresAt: inDays(365) });
 * const env = signKeyList(v1, rootPrivateKeyPem);
 * const r = verifyKeyList(env, { pinnedRootKeys: [root], now: new Date() });
 * const v2 = rotateKeyList(r.ok ? r.keylist : v1, { add: [releaseB], retire: [releaseA.keyid], expiresAt: inDays(365) });
 */
import { z } from 'zod';
import { canonicalBytes } from './canonical-json.ts';
import { Envelope, checkSignatures, issuesLine, signEnvelope, tryCanonicalBytes, type SignedEnvelope } from './envelope.ts';
import { KeyError, keyIdOf, publicKeyOf, type PublicKeyRef } from './keys.ts';
import { reject, type KeyListRejectReason, type Verdict } from './reasons.ts';

const KeyId = z.string().regex(/^[0-9a-f]{64}$/, 'hex sha256 of the raw public key');
// 32 raw bytes in base64 are 43 characters and one '='.
const PublicKeyB64 = z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'base64 of a 32-byte Ed25519 key');
const Timestamp = z.iso.datetime();

const PublicKeyEntry = z.object({ keyid: KeyId, publicKey: PublicKeyB64 });

/**
 * A release key entry of the key list.
 *
 * @example
 * ReleaseKey.parse({ keyid, publicKey, role: 'release', addedAt: '2030-01-01T00:00:00.000Z' })
 */
export const ReleaseKey = PublicKeyEntry.extend({
  role: z.literal('release'),
  addedAt: Timestamp,
});
export type ReleaseKey = z.infer<typeof ReleaseKey>;

/**
 * Largest key list we accept; keeps verification cost bounded on small devices.
 *
 * @example
 * keylist.keys.length <= MAX_RELEASE_KEYS
 */
export const MAX_RELEASE_KEYS = 32;

/**
 * The signed payload of a key list. Refines: each keyid is the sha256 of its key, no duplicate keys,
 * threshold reachable, expiresAt after issuedAt.
 *
 * @example
 * const list = KeyList.parse(envelope.signed); // only after verifyKeyList said ok
 */
export const KeyList = z
  .object({
    v: z.literal(1),
    type: z.literal('keylist'),
    version: z.number().int().positive(),
    issuedAt: Timestamp,
    expiresAt: Timestamp,
    threshold: z.number().int().min(1),
    keys: z.array(ReleaseKey).min(1).max(MAX_RELEASE_KEYS),
    root: PublicKeyEntry,
  })
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    for (const [i, key] of [...list.keys, list.root].entries()) {
      const path = i < list.keys.length ? ['keys', i, 'keyid'] : ['root', 'keyid'];
      if (!idMatches(key)) ctx.addIssue({ code: 'custom', path, message: 'keyid is not the sha256 of publicKey' });
      if (i < list.keys.length) {
        if (seen.has(key.keyid)) ctx.addIssue({ code: 'custom', path, message: 'duplicate key' });
        seen.add(key.keyid);
      }
    }
    // An unreachable threshold would silently freeze every device.
    if (list.threshold > list.keys.length) ctx.addIssue({ code: 'custom', path: ['threshold'], message: `threshold ${list.threshold} exceeds ${list.keys.length} keys` });
    if (Date.parse(list.expiresAt) <= Date.parse(list.issuedAt)) ctx.addIssue({ code: 'custom', path: ['expiresAt'], message: 'must be after issuedAt' });
  });
export type KeyList = z.infer<typeof KeyList>;

function idMatches(key: PublicKeyRef): boolean {
  try {
    return keyIdOf(key.publicKey) === key.keyid;
  } catch {
    return false;
  }
}

/** A release key to put in a key list; `keyid` is derived when omitted. */
export interface ReleaseKeyInput {
  publicKey: string;
  keyid?: string;
  addedAt?: string;
}

/**
 * Creates (and validates) a key list payload.
 *
 * @example
 * const list = createKeyList({ version: 1, root: publicKeyOf(rootPem), keys: [releaseA], threshold: 1, expiresAt: new Date('2027-01-01') });
 */
export function createKeyList(input: {
  version: number;
  root: PublicKeyRef;
  keys: ReleaseKeyInput[];
  expiresAt: Date;
  threshold?: number;
  now?: Date;
}): KeyList {
  const now = input.now ?? new Date();
  return KeyList.parse({
    v: 1,
    type: 'keylist',
    version: input.version,
    issuedAt: now.toISOString(),
    expiresAt: input.expiresAt.toISOString(),
    threshold: input.threshold ?? 1,
    keys: input.keys.map((k) => toReleaseKey(k, now)),
    root: { keyid: input.root.keyid, publicKey: input.root.publicKey },
  });
}

/**
 * The next key list version: adds keys, retires keys by id, keeps the rest (and their `addedAt`).
 * The threshold is kept unless given; the root stays the same.
 *
 * @example
 * const v2 = rotateKeyList(v1, { add: [releaseB], retire: [releaseA.keyid], expiresAt: new Date('2028-01-01') });
 */
export function rotateKeyList(
  previous: KeyList,
  change: { add?: ReleaseKeyInput[]; retire?: string[]; expiresAt: Date; threshold?: number; now?: Date },
): KeyList {
  const now = change.now ?? new Date();
  const retire = new Set(change.retire ?? []);
  const unknown = [...retire].filter((id) => !previous.keys.some((k) => k.keyid === id));
  if (unknown.length > 0) throw new KeyError('INVALID_KEY', `cannot retire keys not in the list: ${unknown.join(', ')}`);
  const kept = previous.keys.filter((k) => !retire.has(k.keyid));
  return KeyList.parse({
    ...previous,
    version: previous.version + 1,
    issuedAt: now.toISOString(),
    expiresAt: change.expiresAt.toISOString(),
    threshold: change.threshold ?? previous.threshold,
    keys: [...kept, ...(change.add ?? []).map((k) => toReleaseKey(k, now))],
  });
}

function toReleaseKey(key: ReleaseKeyInput, now: Date): ReleaseKey {
  const keyid = keyIdOf(key.publicKey);
  if (key.keyid !== undefined && key.keyid !== keyid) throw new KeyError('KEY_MISMATCH', `keyid ${key.keyid} does not match its public key`);
  return { keyid, publicKey: key.publicKey, role: 'release', addedAt: key.addedAt ?? now.toISOString() };
}

/**
 * Signs a key list with the (offline) root private key, which must be the list's `root`.
 *
 * @example
 * const env = signKeyList(list, await readPrivateKeyFile('keys/root.key'));
 */
export function signKeyList(payload: KeyList, rootPrivateKeyPem: string): SignedEnvelope<KeyList> {
  const list = KeyList.parse(payload);
  const signer = publicKeyOf(rootPrivateKeyPem);
  if (signer.keyid !== list.root.keyid) throw new KeyError('KEY_MISMATCH', `key list names root ${list.root.keyid} but was signed with ${signer.keyid}`);
  return signEnvelope(list, [{ privateKeyPem: rootPrivateKeyPem }]);
}

/** Options of `verifyKeyList`. */
export interface VerifyKeyListOptions {
  /** Root public keys baked into the agent (more than one lets a new root be pinned before it signs). */
  pinnedRootKeys: PublicKeyRef[];
  /** Version of the key list the agent trusts now; a lower version is a rollback. */
  currentVersion?: number;
  /** The key list the agent trusts now; a list with the same version but other content is rejected. */
  current?: KeyList;
  now: Date;
}

/**
 * Verifies a received key list envelope: shape, pinned root, root signature, rollback, expiry.
 * An equal version with identical content is accepted (the retained message gets redelivered).
 *
 * @example
 * const r = verifyKeyList(JSON.parse(text), { pinnedRootKeys: [pinnedRoot], current: stored, now: new Date() });
 * if (!r.ok) log.warn({ reason: r.reason }, r.message);
 */
export function verifyKeyList(envelope: unknown, opts: VerifyKeyListOptions): Verdict<{ keylist: KeyList }, KeyListRejectReason> {
  const env = Envelope.safeParse(envelope);
  if (!env.success) return reject('MALFORMED', `key list envelope: ${issuesLine(env.error)}`);
  return verifyKeyListEnvelope(env.data, opts);
}

/**
 * `verifyKeyList` for an envelope already validated by `Envelope` (a `desired` message's schema validates
 * both of its envelopes with it): the agent's per-message path validates each envelope once, not twice.
 *
 * @example
 * const msg = DesiredMessage.parse(json);
 * const r = verifyKeyListEnvelope(msg.keylist, { pinnedRootKeys: [pinnedRoot], now: new Date() });
 */
export function verifyKeyListEnvelope(env: Envelope, opts: VerifyKeyListOptions): Verdict<{ keylist: KeyList; envelope: Envelope }, KeyListRejectReason> {
  const memoKey = rootVerifiedKey(opts.pinnedRootKeys, env);
  let verified = rootVerified.get(memoKey);
  if (!verified) {
    const bytes = tryCanonicalBytes(env.signed);
    if (!bytes) return reject('MALFORMED', 'key list payload has no canonical JSON form');
    const parsed = KeyList.safeParse(env.signed);
    if (!parsed.success) return reject('MALFORMED', `key list: ${issuesLine(parsed.error)}`);
    const list = parsed.data;

    // Trust comes from the agent's pins, never from the key the payload carries.
    const pinned = pinnedMap(opts.pinnedRootKeys);
    if (pinned.get(list.root.keyid) !== list.root.publicKey) return reject('UNKNOWN_ROOT', `root ${list.root.keyid} is not pinned on this device`);
    const check = checkSignatures(env, new Map([[list.root.keyid, list.root.publicKey]]), bytes);
    if (!check.valid.has(list.root.keyid)) {
      return check.bad.length > 0
        ? reject('BAD_ROOT_SIGNATURE', `root signature on key list v${list.version} does not verify`)
        : reject('UNKNOWN_ROOT', `key list v${list.version} carries no signature by root ${list.root.keyid}`);
    }
    verified = { list, envelope: env };
    remember(memoKey, verified);
    // Stored and passed back as `current`, the envelope's payload is this list already parsed.
    parsedTrusted.set(env.signed, list);
  }
  const { list, envelope } = verified;

  const current = opts.current === undefined ? undefined : trustedKeyList(opts.current);
  const currentVersion = Math.max(opts.currentVersion ?? 0, current?.version ?? 0);
  if (list.version < currentVersion) return reject('KEYLIST_ROLLBACK', `key list v${list.version} is older than trusted v${currentVersion}`);
  if (current && list.version === current.version && Buffer.compare(canonicalOf(list), canonicalOf(current)) !== 0) {
    return reject('KEYLIST_ROLLBACK', `key list v${list.version} differs from the trusted list with the same version`);
  }
  if (Date.parse(list.expiresAt) <= opts.now.getTime()) return reject('KEYLIST_EXPIRED', `key list v${list.version} expired at ${list.expiresAt}`);
  return { ok: true, keylist: list, envelope };
}

/**
 * The key list a device trusts now (its stored payload), parsed once per object: an agent passes the
 * same stored list with every desired message, and parsing it again each time (twice) showed in the
 * per-message cost of a simulated fleet's fan-out. Throws a ZodError as `KeyList.parse` does.
 *
 * @example
 * const current = trustedKeyList(state.keylist.signed);
 */
export function trustedKeyList(payload: unknown): KeyList {
  if (payload !== null && typeof payload === 'object') {
    const hit = parsedTrusted.get(payload);
    if (hit) return hit;
  }
  const list = KeyList.parse(payload);
  if (payload !== null && typeof payload === 'object') parsedTrusted.set(payload, list);
  parsedTrusted.set(list, list);
  return list;
}
const parsedTrusted = new WeakMap<object, KeyList>();

/** A trusted list's canonical bytes, made once per list (compared with each received list's). */
function canonicalOf(list: KeyList): Uint8Array {
  let bytes = canonicalBytesOf.get(list);
  if (!bytes) canonicalBytesOf.set(list, (bytes = canonicalBytes(list)));
  return bytes;
}
const canonicalBytesOf = new WeakMap<KeyList, Uint8Array>();

/**
 * The release keys of a verified key list, as the keyid → public key map signature checks use.
 *
 * @example
 * checkSignatures(manifestEnvelope, releaseKeyMap(keylist), bytes);
 */
export function releaseKeyMap(keylist: KeyList): ReadonlyMap<string, string> {
  // Made once per list object: an agent checks every manifest against the same verified list.
  let map = releaseKeyMaps.get(keylist);
  if (!map) releaseKeyMaps.set(keylist, (map = new Map(keylist.keys.filter((k) => k.role === 'release').map((k) => [k.keyid, k.publicKey]))));
  return map;
}
const releaseKeyMaps = new WeakMap<KeyList, ReadonlyMap<string, string>>();

/**
 * Key lists that passed the shape, pin and root-signature checks, by pins + signatures + payload:
 * every desired message carries the same list, and its Ed25519 check was about half of an agent's cost
 * per message. The payload part of the key is its JSON.stringify, not its canonical bytes (made only on
 * a miss): equal texts are equal JSON values (at most -0 and 0 differ, which canonicalize alike), so a hit
 * is the very content that was verified; the same list with its keys in another order only misses. A
 * hit still runs the checks that depend on the moment and on what the caller trusts now (rollback,
 * expiry), and answers with the envelope first verified: the one a caller stores, so the agents of a
 * simulator (thousands in one process) keep one copy of the list, parsed once, not one each. A few
 * entries: lists change rarely.
 */
const rootVerified = new Map<string, { list: KeyList; envelope: Envelope }>();
const ROOT_VERIFIED_MAX = 8;

function rootVerifiedKey(pins: PublicKeyRef[], env: Envelope): string {
  return JSON.stringify([pins.map((k) => [k.keyid, k.publicKey]), env.signatures.map((s) => [s.keyid, s.sig]), env.signed]);
}

function remember(key: string, verified: { list: KeyList; envelope: Envelope }): void {
  if (rootVerified.size >= ROOT_VERIFIED_MAX) rootVerified.delete(rootVerified.keys().next().value!);
  rootVerified.set(key, verified);
}

function pinnedMap(keys: PublicKeyRef[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const key of keys) {
    // A wrong pin is a packaging bug: fail loudly instead of trusting a mislabeled key.
    if (keyIdOf(key.publicKey) !== key.keyid) throw new KeyError('KEY_MISMATCH', `pinned root ${key.keyid} does not match its public key`);
    map.set(key.keyid, key.publicKey);
  }
  return map;
}
