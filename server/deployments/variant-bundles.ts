/**
 * Variant preference: a cohort may prefer a variant (e.g. `int8` for devices with little memory).
 * When a bundle of version V goes to such devices, they get a bundle of V's newest rollable child
 * with that variant (status ready, or rejected and overridden), built from the same definition as
 * V's bundle when none exists yet; without such a child they get V's bundle itself.
 *
 * Which preference applies: a cohort deployment uses its cohort's; a direct device deployment uses
 * the first cohort (by name) the device belongs to that states one.
 */
import { and, desc, eq, isNotNull, or } from 'drizzle-orm';
import type { BundleDefinition } from '../../firmware-bundles/definition.ts';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import { buildAndStoreBundle, type BundleRow } from '../bundles/bundle-service.ts';
import { matches } from '../cohorts/selector.ts';
import type { Db, Tx } from '../db/client.ts';
import { bundles, cohorts, models, modelVersions } from '../db/schema.ts';
import { parseSelectorOrThrow } from '../devices/device-service.ts';
import { formatRef } from '../models/model-ref.ts';

/** The variant a device prefers through its cohorts (first by cohort name), or null. */
export async function devicePreference(tx: Tx, labels: Record<string, string>): Promise<string | null> {
  const rows = await tx.select().from(cohorts).where(isNotNull(cohorts.preferVariant)).orderBy(cohorts.name);
  return rows.find((c) => matches(parseSelectorOrThrow(c.selector), labels))?.preferVariant ?? null;
}

async function rollableChild(tx: Tx, versionId: number, variant: string) {
  return tx.query.modelVersions.findFirst({
    where: and(eq(modelVersions.parentVersionId, versionId), eq(modelVersions.variant, variant), or(eq(modelVersions.status, 'ready'), isNotNull(modelVersions.override))),
    orderBy: desc(modelVersions.version),
  });
}

/** The existing bundle of `bundle`'s variant child (same bundle name), or null. */
export async function existingVariantBundle(tx: Tx, bundle: BundleRow, variant: string): Promise<string | null> {
  const child = await rollableChild(tx, bundle.modelVersionId, variant);
  if (!child) return null;
  const row = await tx.query.bundles.findFirst({ where: and(eq(bundles.modelVersionId, child.id), eq(bundles.name, bundle.name)), orderBy: desc(bundles.createdAt) });
  return row?.id ?? null;
}

/**
 * The bundle id devices preferring `variant` should get instead of `bundle`, building it from the
 * parent bundle's definition (smoke vectors recorded again on the variant) when needed; null when
 * the version has no rollable child of that variant.
 */
export async function variantBundleFor(db: Db, store: ArtifactStore, bundle: BundleRow, variant: string, actor: string): Promise<string | null> {
  const existing = await existingVariantBundle(db, bundle, variant);
  if (existing) return existing;
  const child = await rollableChild(db, bundle.modelVersionId, variant);
  if (!child) return null;
  const model = (await db.query.models.findFirst({ where: eq(models.id, child.modelId) }))!;
  const def = bundle.definition as BundleDefinition;
  const built = await buildAndStoreBundle(db, store, {
    modelRef: formatRef(model.name, child.version),
    // The parent's smoke vectors hold the parent's outputs: the variant's are recorded afresh.
    definition: { ...def, smoke: { ...def.smoke, vectors: [], generate: def.smoke.generate || def.smoke.vectors.length || 4 } },
    actor,
  });
  return built.id;
}
