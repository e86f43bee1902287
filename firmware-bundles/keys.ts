/**
 * Ed25519 keys, signatures and key files, with node:crypto only (no extra dependency on devices).
 *
 * Public keys travel as base64 of the raw 32 bytes; a key's id is the hex sha256 of those bytes, so
 * anyone can recompute it and a key list cannot pair an id with someone else's key.
 *
 * @example
 * const pair = generateKeyPair();
 * const sig = sign(new TextEncoder().encode('hello'), pair.privateKeyPem);
 * verify(new TextEncoder().encode('hello'), sig, pair.publicKey); // true
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';

/** A public key as it appears in key lists: id plus raw key in base64. */
export interface PublicKeyRef {
  keyid: string;
  publicKey: string;
}

/** A freshly generated Ed25519 key pair. */
export interface KeyPair extends PublicKeyRef {
  /** PKCS8 PEM; keep it offline for the root key. */
  privateKeyPem: string;
}

/**
 * Thrown for unusable key material or unsafe key files.
 *
 * @example
 * catch (e) { if (e instanceof KeyError && e.code === 'INSECURE_KEY_FILE') console.error(e.message); }
 */
export class KeyError extends Error {
  constructor(
    readonly code: 'INVALID_KEY' | 'KEY_MISMATCH' | 'INSECURE_KEY_FILE' | 'KEY_FILE_EXISTS',
    message: string,
  ) {
    super(message);
    this.name = 'KeyError';
  }
}

const RAW_PUBLIC_KEY_BYTES = 32;
const SIGNATURE_BYTES = 64;

/**
 * Generates an Ed25519 key pair.
 *
 * @example
 * const { keyid, publicKey, privateKeyPem } = generateKeyPair();
 */
export function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = rawPublicKey(publicKey);
  return {
    keyid: keyIdOf(raw),
    publicKey: raw.toString('base64'),
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  };
}

/**
 * The key id of a public key: hex sha256 of the raw 32-byte key.
 *
 * @example
 * keyIdOf(pair.publicKey) === pair.keyid // true
 */
export function keyIdOf(publicKey: string | Uint8Array): string {
  const raw = typeof publicKey === 'string' ? decodeStrictBase64(publicKey) : Buffer.from(publicKey);
  if (!raw || raw.length !== RAW_PUBLIC_KEY_BYTES) throw new KeyError('INVALID_KEY', 'public key must be 32 raw bytes');
  return createHash('sha256').update(raw).digest('hex');
}

/**
 * Derives the public half (id and base64 raw key) from a PKCS8 PEM private key.
 *
 * @example
 * publicKeyOf(pair.privateKeyPem) // { keyid: pair.keyid, publicKey: pair.publicKey }
 */
export function publicKeyOf(privateKey: string | KeyObject): PublicKeyRef {
  const raw = rawPublicKey(createPublicKey(typeof privateKey === 'string' ? loadPrivateKey(privateKey) : privateKey));
  return { keyid: keyIdOf(raw), publicKey: raw.toString('base64') };
}

/**
 * Signs bytes with an Ed25519 private key (PEM, or a key parsed once with `loadPrivateKey` when signing
 * many payloads: parsing the PEM costs several times the signature); returns the 64-byte signature in base64.
 *
 * @example
 * const sig = sign(canonicalBytes(payload), pair.privateKeyPem);
 */
export function sign(bytes: Uint8Array, privateKey: string | KeyObject): string {
  return edSign(null, bytes, typeof privateKey === 'string' ? loadPrivateKey(privateKey) : privateKey).toString('base64');
}

/**
 * Verifies an Ed25519 signature. Never throws: malformed keys or signatures (attacker-controlled
 * input on the agent) are simply not valid.
 *
 * @example
 * if (!verify(bytes, sigBase64, publicKeyBase64)) reject('BAD_SIGNATURE');
 */
export function verify(bytes: Uint8Array, sig: string, publicKey: string): boolean {
  const raw = decodeStrictBase64(publicKey);
  const signature = decodeStrictBase64(sig);
  if (!raw || raw.length !== RAW_PUBLIC_KEY_BYTES || !signature || signature.length !== SIGNATURE_BYTES) return false;
  try {
    return edVerify(null, bytes, publicKeyObject(publicKey, raw), signature);
  } catch {
    return false;
  }
}

/** Public keys imported for verification, by their base64: an agent checks every manifest against the same few. */
const publicKeyObjects = new Map<string, KeyObject>();
const PUBLIC_KEY_OBJECTS_MAX = 64;

function publicKeyObject(base64: string, raw: Buffer): KeyObject {
  let key = publicKeyObjects.get(base64);
  if (!key) {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
    if (publicKeyObjects.size >= PUBLIC_KEY_OBJECTS_MAX) publicKeyObjects.delete(publicKeyObjects.keys().next().value!);
    publicKeyObjects.set(base64, key);
  }
  return key;
}

/**
 * Writes a PEM private key with mode 0600. Refuses to overwrite unless asked, because silently
 * replacing a root or release key would strand everything it signed.
 *
 * @example
 * await writePrivateKeyFile('keys/root.key', pair.privateKeyPem);
 */
export async function writePrivateKeyFile(path: string, privateKeyPem: string, opts: { overwrite?: boolean } = {}): Promise<void> {
  loadPrivateKey(privateKeyPem); // refuse to write something we could not read back
  try {
    await writeFile(path, privateKeyPem, { mode: 0o600, flag: opts.overwrite ? 'w' : 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new KeyError('KEY_FILE_EXISTS', `${path} already exists`);
    throw err;
  }
  // `mode` only applies when the file is created; an overwritten file keeps its old mode.
  await chmod(path, 0o600);
}

/**
 * Reads a PEM private key, refusing files that group or others can read (as ssh does).
 *
 * @example
 * const rootPem = await readPrivateKeyFile('keys/root.key');
 */
export async function readPrivateKeyFile(path: string): Promise<string> {
  const info = await stat(path);
  if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
    throw new KeyError('INSECURE_KEY_FILE', `${path} is accessible by group/others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`);
  }
  const pem = await readFile(path, 'utf8');
  loadPrivateKey(pem);
  return pem;
}

/**
 * Writes a public key as JSON `{ keyid, publicKey }` (the form key lists and agents pin).
 *
 * @example
 * await writePublicKeyFile('keys/root.pub.json', pair);
 */
export async function writePublicKeyFile(path: string, key: PublicKeyRef): Promise<void> {
  const ref = checkPublicKeyRef(key);
  await writeFile(path, JSON.stringify(ref, null, 2) + '\n', { mode: 0o644 });
}

/**
 * Reads a public key JSON file and checks that its id matches its key.
 *
 * @example
 * const pinnedRoot = await readPublicKeyFile('/etc/flotilla/root.pub.json');
 */
export async function readPublicKeyFile(path: string): Promise<PublicKeyRef> {
  const parsed: unknown = JSON.parse(await readFile(path, 'utf8'));
  if (typeof parsed !== 'object' || parsed === null) throw new KeyError('INVALID_KEY', `${path}: not a public key file`);
  const { keyid, publicKey } = parsed as Record<string, unknown>;
  if (typeof keyid !== 'string' || typeof publicKey !== 'string') throw new KeyError('INVALID_KEY', `${path}: needs keyid and publicKey`);
  return checkPublicKeyRef({ keyid, publicKey });
}

function checkPublicKeyRef(key: PublicKeyRef): PublicKeyRef {
  if (keyIdOf(key.publicKey) !== key.keyid) throw new KeyError('KEY_MISMATCH', `keyid ${key.keyid} does not match its public key`);
  return { keyid: key.keyid, publicKey: key.publicKey };
}

/**
 * Parses a PKCS8 PEM Ed25519 private key, refusing anything else.
 *
 * @example
 * const key = loadPrivateKey(pair.privateKeyPem); // then sign(bytes, key) many times
 */
export function loadPrivateKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new KeyError('INVALID_KEY', 'not a PEM private key');
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new KeyError('INVALID_KEY', `expected an ed25519 key, got ${key.asymmetricKeyType}`);
  return key;
}

function rawPublicKey(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (typeof jwk.x !== 'string') throw new KeyError('INVALID_KEY', 'not an ed25519 public key');
  return Buffer.from(jwk.x, 'base64url');
}

/** Buffer.from(s, 'base64') skips invalid characters; requiring a round trip keeps one spelling per key. */
function decodeStrictBase64(s: string): Buffer | null {
  if (typeof s !== 'string' || s.length === 0 || s.length > 1024) return null;
  const buf = Buffer.from(s, 'base64');
  return buf.toString('base64') === s ? buf : null;
}
