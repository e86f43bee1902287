// Signs many devices' manifests at once. Node's crypto.sign with a callback runs in libuv's thread pool,
// so the Ed25519 signatures (the one per-device cost no implementation can skip) are made on every core
// while this thread builds the next devices' texts; a bounded window of signatures in flight keeps the
// queue (and memory) small. The result per device is the envelope's JSON text, the same bytes as
// JSON.stringify(signEnvelope(manifest, keys)) (manifest-stamp.test.ts).
import { sign } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { LoadedSigningKey } from '../../firmware-bundles/envelope.ts';
import type { StampedManifest } from './manifest-stamp.ts';

/** Signatures in flight: a few per thread-pool thread, so none idles while this thread refills it. */
export const SIGN_WINDOW = Math.max(4, 4 * Math.min(availableParallelism(), Number(process.env.UV_THREADPOOL_SIZE) || 4));

function signAsync(bytes: Buffer, key: LoadedSigningKey): Promise<string> {
  return new Promise((resolve, reject) => sign(null, bytes, key.privateKey, (err, sig) => (err ? reject(err) : resolve(sig.toString('base64')))));
}

/** The signed envelope's JSON text for one stamped manifest. */
export async function signedEnvelopeText(m: StampedManifest, keys: LoadedSigningKey[]): Promise<string> {
  const bytes = Buffer.from(m.canonical, 'utf8');
  const sigs = await Promise.all(keys.map((k) => signAsync(bytes, k)));
  // Key order as signEnvelope makes it: { signed, signatures: [{ keyid, sig }] }.
  return `{"signed":${m.json},"signatures":[${keys.map((k, i) => `{"keyid":${JSON.stringify(k.keyid)},"sig":${JSON.stringify(sigs[i])}}`).join(',')}]}`;
}

/** `make(i)` for i in 0..n-1, each signed; at most `window` signatures in flight; results in order. */
export async function signAll(n: number, make: (i: number) => StampedManifest, keys: LoadedSigningKey[], window = SIGN_WINDOW): Promise<string[]> {
  const out = new Array<string>(n);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < n; i = next++) out[i] = await signedEnvelopeText(make(i), keys);
  };
  await Promise.all(Array.from({ length: Math.min(window, n) }, lane));
  return out;
}
