// Device credential hashes. Device secrets are 256-bit random values the server generates, so no
// dictionary or brute-force attack applies and a slow KDF buys nothing: the stored form is
// `sha256$<base64url digest>`, checked in microseconds with a constant-time comparison (see
// ARCHITECTURE.md, "Decisions"). Rows enrolled before that still hold `scrypt$…`; they verify the slow
// way once and the caller replaces them with the fast form (`needsRehash`).
import { createHash, timingSafeEqual } from 'node:crypto';
import { scryptVerify } from './secrets.ts';

const PREFIX = 'sha256$';

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

export function hashDeviceSecret(secret: string): string {
  return PREFIX + digest(secret).toString('base64url');
}

export interface CredentialCheck {
  ok: boolean;
  /** The stored hash is in a legacy form: store `hashDeviceSecret(secret)` instead (only set when ok). */
  needsRehash: boolean;
}

export async function verifyDeviceSecret(secret: string, stored: string): Promise<CredentialCheck> {
  if (stored.startsWith(PREFIX)) {
    const expected = Buffer.from(stored.slice(PREFIX.length), 'base64url');
    const actual = digest(secret);
    // Both are 32 bytes for any well-formed row; the length test only guards a corrupt one.
    return { ok: expected.length === actual.length && timingSafeEqual(actual, expected), needsRehash: false };
  }
  const ok = await scryptVerify(secret, stored);
  return { ok, needsRehash: ok };
}
