// The device's identity: enrolled once with a token, then stored in the data dir (mode 0600, atomic
// write) with the MQTT credentials and the pinned trust root. Later starts reuse it and need no token.
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { keyIdOf, type PublicKeyRef } from '../firmware-bundles/keys.ts';
import { DEVICE_ID_PATTERN } from '../protocol/topics.ts';
import { Backoff, sleep } from './backoff.ts';
import { dropEnrollmentNonce, enrollmentNonce } from './enroll-nonce.ts';
import { writeJsonAtomic } from './fs-atomic.ts';
import type { HttpResponse } from './http-client.ts';
import { pinnedFetch } from './tls-pin.ts';
import { AGENT_VERSION } from './version.ts';

export const IDENTITY_FILE = 'identity.json';

const TrustRoot = z.object({
  keyid: z.string().regex(/^[0-9a-f]{64}$/),
  publicKey: z.string(),
  /** How the root got pinned: given explicitly (--trust-root) or trusted on first use at enrollment. */
  source: z.enum(['pinned', 'tofu']),
  pinnedAt: z.string(),
});
export type TrustRoot = z.infer<typeof TrustRoot>;

export const Identity = z.object({
  v: z.literal(1),
  deviceId: z.string().regex(DEVICE_ID_PATTERN),
  enrolledAt: z.string(),
  serverUrl: z.string().url(),
  mqtt: z.object({ url: z.string(), clientId: z.string(), username: z.string(), password: z.string() }),
  labels: z.record(z.string(), z.string()),
  trust: TrustRoot.nullable(),
  /** The CA pinned for HTTPS and MQTT over TLS (absent in identities from before TLS, or without one). */
  tls: z.object({ ca: z.string() }).nullable().optional(),
});
export type Identity = z.infer<typeof Identity>;

const EnrollResponse = z.object({
  deviceId: z.string().regex(DEVICE_ID_PATTERN),
  status: z.enum(['approved', 'pending']),
  labels: z.record(z.string(), z.string()),
  mqtt: z.object({ url: z.string(), clientId: z.string(), username: z.string(), password: z.string() }),
  serverUrl: z.string().url(),
  trust: z.object({ rootKeyid: z.string(), rootPublicKey: z.string() }).nullable().optional(),
  tls: z.object({ ca: z.string() }).optional(),
});

/** Enrollment or identity problems the agent cannot fix by retrying (bad token, unreadable file). */
export class IdentityError extends Error {
  override name = 'IdentityError';
}

/** Hardware facts sent at enrollment. */
export function deviceFacts() {
  return {
    arch: os.arch(),
    cpus: Math.max(1, os.availableParallelism?.() ?? os.cpus().length),
    memoryBytes: os.totalmem(),
    os: `${os.platform()} ${os.release()}`.slice(0, 128),
    agentVersion: AGENT_VERSION,
    hostname: os.hostname().slice(0, 253),
  };
}

/**
 * Parses a trust root given on the command line: the base64 of the raw 32-byte Ed25519 key, or a
 * file holding that text or the JSON `{ keyid, publicKey }` that `flotilla keys init` prints.
 */
export async function parseTrustRoot(value: string): Promise<PublicKeyRef> {
  const fromText = (text: string): PublicKeyRef => {
    const t = text.trim();
    if (t.startsWith('{')) {
      const j = JSON.parse(t) as Record<string, unknown>;
      const publicKey = (j.publicKey ?? j.rootPublicKey) as unknown;
      const keyid = (j.keyid ?? j.rootKeyid) as unknown;
      if (typeof publicKey !== 'string') throw new IdentityError('trust root JSON needs publicKey (or rootPublicKey)');
      const derived = keyIdOf(publicKey);
      if (keyid !== undefined && keyid !== derived) throw new IdentityError(`trust root keyid ${String(keyid)} does not match its public key`);
      return { keyid: derived, publicKey };
    }
    return { keyid: keyIdOf(t), publicKey: t };
  };
  if (/^[A-Za-z0-9+/]{43}=$/.test(value.trim())) return fromText(value);
  let text: string;
  try {
    text = await readFile(value, 'utf8');
  } catch (err) {
    throw new IdentityError(`--trust-root: cannot read ${value}: ${(err as Error).message}`);
  }
  try {
    return fromText(text);
  } catch (err) {
    throw new IdentityError(`--trust-root ${value}: ${(err as Error).message}`);
  }
}

export interface IdentityOptions {
  dataDir: string;
  server?: string;
  enrollToken?: string;
  name?: string;
  /** An explicitly pinned root (wins over what is stored or what enrollment says). */
  trustRoot?: PublicKeyRef;
  /** A CA (PEM) given explicitly (--ca): used for enrollment itself and pinned (wins over the enrollment answer's). */
  ca?: string;
  logger: Logger;
  signal?: AbortSignal;
  /** Retry window for an unreachable server (enrollment keeps retrying until stopped). */
  retry?: { minMs: number; maxMs: number };
}

/** Reads the stored identity, or null if the device never enrolled. */
export async function readIdentity(dataDir: string): Promise<Identity | null> {
  let text: string;
  try {
    text = await readFile(path.join(dataDir, IDENTITY_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const parsed = Identity.safeParse(JSON.parse(text));
  if (!parsed.success) throw new IdentityError(`${IDENTITY_FILE} is not a valid identity: ${parsed.error.issues[0].message}`);
  return parsed.data;
}

/**
 * Returns the stored identity, enrolling first if there is none. An explicit trust root replaces
 * the stored one (logged); otherwise the root from the enrollment answer is pinned (TOFU).
 */
export async function loadOrEnroll(opts: IdentityOptions): Promise<Identity> {
  const { logger } = opts;
  const file = path.join(opts.dataDir, IDENTITY_FILE);
  let identity = await readIdentity(opts.dataDir);
  if (identity) {
    if (opts.trustRoot && identity.trust?.keyid !== opts.trustRoot.keyid) {
      logger.warn({ from: identity.trust?.keyid ?? null, to: opts.trustRoot.keyid }, 'pinning the trust root given on the command line');
      identity = { ...identity, trust: { ...opts.trustRoot, source: 'pinned', pinnedAt: new Date().toISOString() } };
      await writeJsonAtomic(file, identity);
    }
    if (opts.ca && identity.tls?.ca !== opts.ca) {
      logger.warn('pinning the TLS CA given on the command line');
      identity = { ...identity, tls: { ca: opts.ca } };
      await writeJsonAtomic(file, identity);
    }
    logger.info({ deviceId: identity.deviceId, trustRoot: identity.trust?.keyid ?? null }, 'identity loaded');
    return identity;
  }
  if (!opts.server || !opts.enrollToken) throw new IdentityError('not enrolled yet: pass --server and --enroll-token (or FLOTILLA_AGENT_SERVER / FLOTILLA_AGENT_ENROLL_TOKEN)');
  const res = await enroll(opts.server, opts.enrollToken, opts.name, opts);
  let trust: TrustRoot | null = null;
  if (opts.trustRoot) {
    trust = { ...opts.trustRoot, source: 'pinned', pinnedAt: new Date().toISOString() };
    if (res.trust && res.trust.rootKeyid !== opts.trustRoot.keyid) {
      logger.warn({ pinned: opts.trustRoot.keyid, server: res.trust.rootKeyid }, 'the server announces a different trust root than the pinned one; keeping the pinned root');
    }
  } else if (res.trust) {
    if (keyIdOf(res.trust.rootPublicKey) !== res.trust.rootKeyid) throw new IdentityError('enrollment answer: trust root keyid does not match its key');
    trust = { keyid: res.trust.rootKeyid, publicKey: res.trust.rootPublicKey, source: 'tofu', pinnedAt: new Date().toISOString() };
    logger.warn({ rootKeyid: trust.keyid }, 'trust on first use: pinned the root key from the enrollment answer (pass --trust-root to pin it explicitly)');
  } else {
    logger.error('no trust root: the server has none yet and --trust-root was not given; every update will be refused until one is pinned');
  }
  identity = {
    v: 1,
    deviceId: res.deviceId,
    enrolledAt: new Date().toISOString(),
    serverUrl: res.serverUrl,
    mqtt: res.mqtt,
    labels: res.labels,
    trust,
    // --ca was checked by the enrollment call itself; otherwise the CA the server names over the channel
    // that just verified against the system's CAs (or plain http: then it pins what a network attacker said — use --ca).
    tls: opts.ca ? { ca: opts.ca } : res.tls ? { ca: res.tls.ca } : null,
  };
  await writeJsonAtomic(file, identity);
  await dropEnrollmentNonce(opts.dataDir);
  logger.info({ deviceId: identity.deviceId, status: res.status }, res.status === 'pending' ? 'enrolled; waiting for an operator to approve this device' : 'enrolled');
  return identity;
}

async function enroll(server: string, token: string, name: string | undefined, opts: IdentityOptions): Promise<z.infer<typeof EnrollResponse>> {
  const url = new URL('/api/v1/enroll', server).toString();
  // One nonce for every attempt of this enrollment, across restarts (enroll-nonce.ts).
  const nonce = await enrollmentNonce(opts.dataDir);
  const backoff = new Backoff(opts.retry ?? { minMs: 1000, maxMs: 60_000 });
  for (;;) {
    let res: HttpResponse;
    try {
      res = await pinnedFetch(opts.ca)(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token, facts: deviceFacts(), nonce, ...(name ? { name } : {}) }),
        signal: opts.signal ? AbortSignal.any([opts.signal, AbortSignal.timeout(30_000)]) : AbortSignal.timeout(30_000),
      });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      const delay = backoff.next();
      opts.logger.warn({ err: (err as Error).message, retryInMs: delay }, 'enrollment: server unreachable');
      await sleep(delay, opts.signal);
      continue;
    }
    const text = await res.text();
    if (res.status === 201) {
      const parsed = EnrollResponse.safeParse(JSON.parse(text));
      if (!parsed.success) throw new IdentityError(`enrollment answer not understood: ${parsed.error.issues[0].message}`);
      return parsed.data;
    }
    if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
      let message = text;
      try {
        message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text;
      } catch {
        /* plain text */
      }
      await dropEnrollmentNonce(opts.dataDir);
      throw new IdentityError(`enrollment refused (${res.status}): ${message}`);
    }
    const delay = backoff.next();
    opts.logger.warn({ status: res.status, retryInMs: delay }, 'enrollment: server error, retrying');
    await sleep(delay, opts.signal);
  }
}
