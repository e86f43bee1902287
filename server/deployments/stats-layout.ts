// The reference layout a device's signed manifest carries (`agentConfig.statsLayout`): the bundle's
// model version's current reference layout when the bundle does not ship exactly that one (the
// reference was added or replaced after the build). That is how adding a reference starts monitoring
// on a running fleet without a new bundle: the agent adopts it like any other setting.
import { eq } from 'drizzle-orm';
import { canonicalize } from '../../firmware-bundles/canonical-json.ts';
import type { SketchLayout } from '../../protocol/sketch/feature-set-sketch.ts';
import type { Tx } from '../db/client.ts';
import { referenceProfiles } from '../db/schema.ts';

export async function manifestStatsLayout(tx: Tx, bundle: { modelVersionId: number; definition: unknown }): Promise<SketchLayout | undefined> {
  const row = await tx.query.referenceProfiles.findFirst({ columns: { layout: true }, where: eq(referenceProfiles.modelVersionId, bundle.modelVersionId) });
  if (!row) return undefined;
  const shipped = (bundle.definition as { reference?: { layout?: unknown } }).reference?.layout;
  return shipped !== undefined && canonicalize(shipped) === canonicalize(row.layout) ? undefined : row.layout;
}
