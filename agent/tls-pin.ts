// Transport pinning: once the agent has a CA (from `--ca` or the enrollment answer), every HTTPS call
// (enrollment, downloads, sample uploads) and the MQTT connection verify the server's certificate
// against that CA only — not the system's public CAs, and never trust-on-first-use.
import { readFile } from 'node:fs/promises';
import { Agent } from 'undici';
import { IdentityError } from './identity.ts';

export type FetchFn = typeof fetch;

/** `fetch` that trusts only `caPem` for https:// URLs; plain `fetch` without a CA. */
export function pinnedFetch(caPem: string | null | undefined): FetchFn {
  if (!caPem) return fetch;
  // Node's fetch is undici: a dispatcher with its own CA list replaces the default trust store.
  const dispatcher = new Agent({ connect: { ca: caPem, rejectUnauthorized: true } });
  return ((input: Parameters<FetchFn>[0], init?: RequestInit) => fetch(input, { ...init, dispatcher } as RequestInit)) as FetchFn;
}

/** MQTT.js options pinning the broker's certificate to `caPem` (for mqtts:// and wss:// URLs). */
export function mqttTlsOptions(caPem: string | null | undefined): { ca?: string; rejectUnauthorized?: boolean } {
  return caPem ? { ca: caPem, rejectUnauthorized: true } : {};
}

/** Reads a CA file given with --ca; it must hold at least one PEM certificate. */
export async function readCaFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new IdentityError(`--ca: cannot read ${file}: ${(err as Error).message}`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new IdentityError(`--ca ${file}: no PEM certificate in it`);
  return text;
}
