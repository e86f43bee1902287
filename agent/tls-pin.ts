// Transport pinning: once the agent has a CA (from `--ca` or the enrollment answer), every HTTPS call
// (enrollment, downloads, sample uploads) and the MQTT connection verify the server's certificate
// against that CA only — not the system's public CAs, and never trust-on-first-use.
import { readFile } from 'node:fs/promises';
import { httpClient, type HttpFetch } from './http-client.ts';
import { IdentityError } from './identity.ts';

/** An HTTP client that trusts only `caPem` for https:// URLs; the system's CAs without one. */
export function pinnedFetch(caPem: string | null | undefined): HttpFetch {
  return httpClient(caPem);
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
