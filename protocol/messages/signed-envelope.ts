/**
 * The wire shape of a signed envelope, TUF style: `{ signed, signatures: [{ keyid, sig }] }` (signing and
 * verifying: `firmware-bundles/envelope.ts`). One schema for every place an envelope arrives — a
 * `desired` message's key list and manifest, a bundle's files on disk, the server's key lists — so a
 * message validated once against it needs no second pass before its signatures are checked.
 *
 * @example
 * const env = Envelope.safeParse(JSON.parse(text)); // then check signatures over canonicalBytes(env.data.signed)
 */
import { z } from 'zod';

/**
 * More signatures than any sane threshold needs; a cap keeps verification cost bounded.
 *
 * @example
 * envelope.signatures.length <= MAX_SIGNATURES
 */
export const MAX_SIGNATURES = 16;

/**
 * One signature: the signer's key id and the base64 Ed25519 signature.
 *
 * @example
 * Signature.parse({ keyid: pair.keyid, sig })
 */
export const Signature = z.object({
  keyid: z.string().regex(/^[0-9a-f]{64}$/, 'hex sha256'),
  sig: z.string().min(1).max(128),
});
export type Signature = z.infer<typeof Signature>;

/**
 * Envelope shape before the payload is trusted: `signed` is any JSON object.
 *
 * @example
 * Envelope.parse({ signed: { v: 1 }, signatures: [{ keyid, sig }] })
 */
export const Envelope = z.object({
  signed: z.record(z.string(), z.unknown()),
  signatures: z.array(Signature).max(MAX_SIGNATURES),
});
export type Envelope = z.infer<typeof Envelope>;
