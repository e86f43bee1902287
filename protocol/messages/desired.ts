/**
 * `desired` (retained, server → device): the device's signed desired state. It carries the current
 * root-signed key list with the manifest, so key rotation reaches devices with no manual step.
 * Signatures are checked by `firmware-bundles/` (verifyKeyListEnvelope, then verifyManifestEnvelope);
 * this schema fixes the message and both envelopes' shapes (the one validation an agent makes of them).
 * `manifest: null` means "run nothing new" (keep what runs).
 *
 * @example
 * DesiredMessage.parse({ v: 1, keylist: { signed: {...}, signatures: [...] }, manifest: { signed: {...}, signatures: [...] } });
 */
import { z } from 'zod';
import { Envelope } from './signed-envelope.ts';

export const DesiredMessage = z.object({
  v: z.literal(1),
  keylist: Envelope,
  manifest: Envelope.nullable(),
});
export type DesiredMessage = z.infer<typeof DesiredMessage>;
