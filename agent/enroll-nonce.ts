// The nonce of an enrollment in progress: made once, kept in the data dir (mode 0600) until the identity
// is stored, and sent with every attempt. The server derives the device's id and secret from it
// (server/enroll/enroll-nonce.ts), so when an attempt's answer never arrives (the 30 s timeout, the
// process killed, the connection lost after the server committed) the next attempt — in this process or
// after a restart — gets the identity the server already enrolled instead of a second device row.
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from './fs-atomic.ts';

export const ENROLL_NONCE_FILE = 'enroll-nonce';
const NONCE = /^[A-Za-z0-9_-]{43,128}$/;

/** The enrollment's nonce: the stored one, else a new one of 32 random bytes (stored before it is used). */
export async function enrollmentNonce(dataDir: string): Promise<string> {
  const file = path.join(dataDir, ENROLL_NONCE_FILE);
  try {
    const stored = (await readFile(file, 'utf8')).trim();
    if (NONCE.test(stored)) return stored;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const nonce = randomBytes(32).toString('base64url');
  await writeFileAtomic(file, nonce);
  return nonce;
}

/** Ends the enrollment: stored as an identity, or refused (the next enrollment starts afresh). */
export async function dropEnrollmentNonce(dataDir: string): Promise<void> {
  await rm(path.join(dataDir, ENROLL_NONCE_FILE), { force: true });
}
