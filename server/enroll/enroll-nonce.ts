// Idempotent enrollment: an agent sends a random nonce of its own (32 bytes, kept in its data dir until
// its identity is stored) with every attempt of one enrollment. The device id and secret are derived from
// it, so an attempt whose answer never arrived (the agent's 30 s timeout, a killed process, a lost
// connection) is answered again by the next attempt with the same identity — the enrolled row is not
// orphaned and the token's use is not spent twice. Only the holder of the nonce gets that identity: the
// id is a one-way hash of it, and the secret needs the nonce itself (not stored: the row keeps the
// secret's hash, as for every device). Without a nonce (older agents) enrollment draws a random identity.
import { createHmac } from 'node:crypto';
import { sha256Hex } from '../auth/secrets.ts';

/** 32 random bytes as base64url, at most 128 characters: the agent's share of the identity. */
export const ENROLL_NONCE = /^[A-Za-z0-9_-]{43,128}$/;

/** The device id and secret an enrollment nonce stands for. */
export function identityFromNonce(nonce: string): { deviceId: string; secret: string } {
  return {
    deviceId: `dev_${sha256Hex(`flotilla enrollment id\n${nonce}`).slice(0, 20)}`,
    secret: `fld_${createHmac('sha256', nonce).update('flotilla device secret').digest('base64url')}`,
  };
}
