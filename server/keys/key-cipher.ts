// Release private keys at rest: AES-256-GCM (node:crypto) under a key-encryption key that does not
// live in the database, so a copy of the database alone cannot sign manifests. The key comes from
// FLOTILLA_KEY_ENCRYPTION_KEY (base64 or hex of 32 bytes), from the file FLOTILLA_KEY_ENCRYPTION_KEY_FILE
// names, or by default from `<data dir>/key-encryption.key`, generated (mode 0600) on first start so
// `npm start` needs no configuration. The key id is the additional authenticated data: a ciphertext
// moved to another row does not decrypt.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const DEFAULT_KEK_FILE = 'key-encryption.key';
const PREFIX = 'enc:v1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class KeyCipherError extends Error {
  override name = 'KeyCipherError';
}

/** Parses a 32-byte key given as 64 hex digits or base64; throws a one-line error otherwise. */
export function parseKek(text: string, source: string): Buffer {
  const t = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  if (key.length !== 32) throw new KeyCipherError(`${source}: expected 32 bytes as 64 hex digits or base64, got ${key.length} bytes`);
  return key;
}

export class KeyCipher {
  constructor(private readonly kek: Buffer) {
    if (kek.length !== 32) throw new KeyCipherError('the key-encryption key must be 32 bytes');
  }

  static isEncrypted(stored: string): boolean {
    return stored.startsWith(PREFIX);
  }

  encrypt(keyid: string, plaintext: string): string {
    const iv = randomBytes(IV_BYTES);
    const c = createCipheriv('aes-256-gcm', this.kek, iv);
    c.setAAD(Buffer.from(keyid));
    const ct = Buffer.concat([c.update(plaintext, 'utf8'), c.final()]);
    return PREFIX + Buffer.concat([iv, c.getAuthTag(), ct]).toString('base64');
  }

  decrypt(keyid: string, stored: string): string {
    if (!KeyCipher.isEncrypted(stored)) throw new KeyCipherError(`release key ${keyid} is not encrypted`);
    const raw = Buffer.from(stored.slice(PREFIX.length), 'base64');
    if (raw.length <= IV_BYTES + TAG_BYTES) throw new KeyCipherError(`release key ${keyid}: truncated ciphertext`);
    const d = createDecipheriv('aes-256-gcm', this.kek, raw.subarray(0, IV_BYTES));
    d.setAAD(Buffer.from(keyid));
    d.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    try {
      return Buffer.concat([d.update(raw.subarray(IV_BYTES + TAG_BYTES)), d.final()]).toString('utf8');
    } catch {
      throw new KeyCipherError(`release key ${keyid} does not decrypt with this key-encryption key (FLOTILLA_KEY_ENCRYPTION_KEY / _FILE)`);
    }
  }
}

/** The key-encryption key: from the environment, a named file, or the data dir's generated file. */
export async function loadKeyCipher(o: { key?: string; file?: string; dataDir: string }): Promise<{ cipher: KeyCipher; source: string }> {
  if (o.key) return { cipher: new KeyCipher(parseKek(o.key, 'FLOTILLA_KEY_ENCRYPTION_KEY')), source: 'FLOTILLA_KEY_ENCRYPTION_KEY' };
  const file = o.file ?? path.join(o.dataDir, DEFAULT_KEK_FILE);
  let text: string | null = null;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || o.file) throw new KeyCipherError(`cannot read the key-encryption key ${file}: ${(err as Error).message}`);
  }
  if (text === null) {
    const fresh = randomBytes(32).toString('base64');
    try {
      await writeFile(file, fresh + '\n', { mode: 0o600, flag: 'wx' });
      await chmod(file, 0o600);
      text = fresh;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      text = await readFile(file, 'utf8'); // another replica on the same data dir made it first
    }
  }
  return { cipher: new KeyCipher(parseKek(text, file)), source: file };
}
