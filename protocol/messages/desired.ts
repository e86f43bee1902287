/**
 * `desired` (retained, server → device): the device's signed desired state. It carries the current
 * root-signed key list with the manifest, so key rotation reaches devices with no manual step.
 * Signatures are checked by `firmware-bundles/` (verifyKeyList, then verifyManifest); this schema
 * only fixes the envelope shape. `manifest: null` means "run nothing new" (keep what runs).
 *
 * @example
 * DesiredMessage.parse({ v: 1, keylist: { signed: {...}, signatures: [...] }, manifest: { signed: {...}, signatures: [...] } });
 */
import { z } from 'zod';

const SignedEnvelope = z.object({
  signed: z.record(z.string(), z.unknown()),
  signatures: z.array(z.object({ keyid: z.string(), sig: z.string() })).max(16),
});

export const DesiredMessage = z.object({
  v: z.literal(1),
  keylist: SignedEnvelope,
  manifest: SignedEnvelope.nullable(),
});
export type DesiredMessage = z.infer<typeof DesiredMessage>;
