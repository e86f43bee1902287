/**
 * Signed envelopes, TUF style: `{ signed, signatures: [{ keyid, sig }] }`, each signature an Ed25519
 * signature over the canonical JSON of `signed`. The verifier re-canonicalizes the payload it parsed
 * and then uses that same parsed object, so what is verified is exactly what is acted on (duplicate
 * keys or odd whitespace in the received text cannot smuggle a second meaning past the signature).
 *
 * @example
 * const env = signEnvelope(payload, [releaseKey]);
 * const check = checkSignatures(env, new Map([[releaseKey.keyid, releaseKey.publicKey]]));
 * check.valid.size >= threshold;
 */
import type { z } from 'zod';
import { canonicalBytes } from './canonical-json.ts';
import type { KeyObject } from 'node:crypto';
import { KeyError, loadPrivateKey, publicKeyOf, sign, verify } from './keys.ts';
import type { Signature } from '../protocol/messages/signed-envelope.ts';

// The wire shape lives with the other message schemas; signing and checking live here.
export { Envelope, MAX_SIGNATURES, Signature } from '../protocol/messages/signed-envelope.ts';

/** A signed envelope around payload `T`. */
export interface SignedEnvelope<T> {
  signed: T;
  signatures: Signature[];
}

/** A key that signs: its PEM, and optionally its id (checked against the PEM if given). */
export interface SigningKey {
  keyid?: string;
  privateKeyPem: string;
}

/** A signing key parsed once (`loadSigningKeys`), for signing many payloads. */
export interface LoadedSigningKey {
  keyid: string;
  privateKey: KeyObject;
}

/**
 * Parses signing keys once and derives their ids (checked against given ids), so that signing a
 * manifest per device does not parse each PEM again per signature.
 *
 * @example
 * const loaded = loadSigningKeys(keys);
 * const envs = payloads.map((p) => signEnvelope(p, loaded));
 */
export function loadSigningKeys(keys: SigningKey[]): LoadedSigningKey[] {
  return keys.map((key) => {
    const privateKey = loadPrivateKey(key.privateKeyPem);
    const { keyid } = publicKeyOf(privateKey);
    if (key.keyid !== undefined && key.keyid !== keyid) throw new KeyError('KEY_MISMATCH', `keyid ${key.keyid} does not match its private key (${keyid})`);
    return { keyid, privateKey };
  });
}

/**
 * Signs a payload with one or more keys. Key ids are derived from the private keys, so a
 * mislabeled key fails here rather than on a device.
 *
 * @example
 * const env = signEnvelope({ v: 1, type: 'deployment', ... }, [{ privateKeyPem }]);
 */
export function signEnvelope<T extends object>(payload: T, keys: Array<SigningKey | LoadedSigningKey>): SignedEnvelope<T> {
  if (keys.length === 0) throw new KeyError('INVALID_KEY', 'at least one signing key is needed');
  const bytes = canonicalBytes(payload);
  const signatures = keys.map((key) => {
    const loaded = 'privateKey' in key ? key : loadSigningKeys([key])[0];
    return { keyid: loaded.keyid, sig: sign(bytes, loaded.privateKey) };
  });
  return { signed: payload, signatures };
}

/** Outcome of checking an envelope's signatures against a set of trusted keys. */
export interface SignatureCheck {
  /** Distinct trusted key ids with a valid signature (a key signing twice counts once). */
  valid: Set<string>;
  /** Trusted key ids whose signature did not verify: the payload or signature was altered. */
  bad: string[];
  /** Key ids not among the trusted keys. */
  unknown: string[];
}

/**
 * Checks every signature of an envelope against trusted keys (keyid → base64 public key).
 * `signedBytes` is the canonical JSON of `signed`, passed in so callers canonicalize once.
 *
 * @example
 * const { valid } = checkSignatures(env, trusted, canonicalBytes(env.signed));
 */
export function checkSignatures(
  envelope: { signatures: Signature[] },
  trusted: ReadonlyMap<string, string>,
  signedBytes: Uint8Array,
): SignatureCheck {
  const result: SignatureCheck = { valid: new Set(), bad: [], unknown: [] };
  for (const { keyid, sig } of envelope.signatures) {
    const publicKey = trusted.get(keyid);
    if (publicKey === undefined) result.unknown.push(keyid);
    else if (verify(signedBytes, sig, publicKey)) result.valid.add(keyid);
    else result.bad.push(keyid);
  }
  return result;
}

/**
 * Canonical bytes of an untrusted payload, or null if it has no canonical form.
 *
 * @example
 * const bytes = tryCanonicalBytes(env.signed); if (!bytes) return reject('MALFORMED', '...');
 */
export function tryCanonicalBytes(value: unknown): Uint8Array | null {
  try {
    return canonicalBytes(value);
  } catch {
    return null;
  }
}

/**
 * Drops properties whose value is `undefined` (deeply), since canonical JSON refuses them and on
 * the wire they are simply absent. Used on zod output before signing.
 *
 * @example
 * withoutUndefined({ a: 1, cohort: undefined }) // { a: 1 }
 */
export function withoutUndefined<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => withoutUndefined(v)) as T;
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = withoutUndefined(v);
    return out as T;
  }
  return value;
}

/**
 * Turns a zod error into one short line for a rejection message.
 *
 * @example
 * reject('MALFORMED', `manifest: ${issuesLine(parsed.error)}`);
 */
export function issuesLine(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}
