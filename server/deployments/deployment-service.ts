// Direct deployments: one bundle to one device or to every current member of a cohort. A cohort
// deployment is remembered, so a device that joins the cohort later (enrolls, is approved or
// relabelled) is given the same desired state: late joiners converge. Devices whose cohort prefers a
// variant (e.g. int8) get that variant's bundle when the version has one (variant-bundles.ts).
import { desc, eq } from 'drizzle-orm';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import { recordAudit } from '../audit/audit-log.ts';
import { recordEvent } from '../events/event-log.ts';
import { randomId } from '../auth/secrets.ts';
import { resolveBundle } from '../bundles/bundle-service.ts';
import { matches } from '../cohorts/selector.ts';
import { cohortMemberIds, getCohort } from '../cohorts/cohort-service.ts';
import type { Db } from '../db/client.ts';
import { bundles, cohorts, deployments, deviceDesired, models, modelVersions } from '../db/schema.ts';
import { getDevice, parseSelectorOrThrow } from '../devices/device-service.ts';
import { Conflict, Invalid } from '../errors.ts';
import { formatRef } from '../models/model-ref.ts';
import { assertRollable } from '../models/version-status.ts';
import type { DesiredState } from './desired-state.ts';
import { devicePreference, existingVariantBundle, variantBundleFor } from './variant-bundles.ts';

export interface DeployInput {
  bundle: string;
  device?: string;
  cohort?: string;
  actor: string;
  /** Lets a preferred variant's bundle be built on the fly; without it only existing variant bundles are used. */
  store?: ArtifactStore;
}

export async function deploy(db: Db, desired: DesiredState, input: DeployInput) {
  if (Boolean(input.device) === Boolean(input.cohort)) throw Invalid('give exactly one target: a device or a cohort');
  const id = randomId('dep', 8);
  const bundle = await resolveBundle(db, input.bundle);
  const [mv] = await db.select({ row: modelVersions, name: models.name }).from(modelVersions).innerJoin(models, eq(models.id, modelVersions.modelId)).where(eq(modelVersions.id, bundle.modelVersionId));
  assertRollable(mv.row, formatRef(mv.name, mv.row.version));
  // Variant bundles are built before the transaction: a build stores files and has its own transaction.
  const variant = input.cohort ? (await getCohort(db, input.cohort)).preferVariant : await devicePreference(db, (await getDevice(db, input.device!)).labels);
  const variantBundle = variant ? await (input.store ? variantBundleFor(db, input.store, bundle, variant, input.actor) : existingVariantBundle(db, bundle, variant)) : null;
  const target = variantBundle ?? bundle.id;
  const { result, built } = await db.transaction(async (tx) => {
    let deviceIds: string[];
    if (input.device) {
      const device = await getDevice(tx, input.device);
      if (device.status !== 'approved') throw Conflict(`device ${device.id} is ${device.status}; only approved devices receive deployments`);
      deviceIds = [device.id];
    } else {
      deviceIds = await cohortMemberIds(tx, input.cohort!);
    }
    const built = await desired.assign(tx, target, deviceIds, { deploymentId: id, cohort: input.cohort });
    await tx.insert(deployments).values({
      id,
      bundleId: bundle.id,
      targetKind: input.device ? 'device' : 'cohort',
      target: (input.device ?? input.cohort)!,
      deviceCount: deviceIds.length,
      createdBy: input.actor,
    });
    await recordAudit(tx, input.actor, 'deployment.create', id, {
      bundle: bundle.id,
      device: input.device,
      cohort: input.cohort,
      devices: deviceIds.length,
      ...(variantBundle ? { variant, variantBundle } : {}),
    });
    await recordEvent(tx, 'deployment.created', id, {
      deploymentId: id,
      bundleId: bundle.id,
      target: { kind: input.device ? 'device' : 'cohort', name: (input.device ?? input.cohort)! },
      devices: deviceIds.length,
    });
    return { result: { id, bundleId: bundle.id, devices: deviceIds, assignments: Object.fromEntries(deviceIds.map((d) => [d, target])) as Record<string, string> }, built };
  });
  // The messages signed in the transaction, published as built once it committed.
  await desired.publishBuilt(built);
  return result;
}

/**
 * Gives a device the newest cohort deployment whose cohort it now belongs to, if it does not already
 * run it. Called when a device becomes approved or its labels change.
 */
export async function reconcileDevice(db: Db, desired: DesiredState, deviceId: string): Promise<boolean> {
  const assigned = await db.transaction(async (tx) => {
    const device = await getDevice(tx, deviceId);
    if (device.status !== 'approved') return false;
    const current = await tx.query.deviceDesired.findFirst({ where: eq(deviceDesired.deviceId, deviceId) });
    const cohortDeployments = await tx.select().from(deployments).where(eq(deployments.targetKind, 'cohort')).orderBy(desc(deployments.createdAt));
    for (const dep of cohortDeployments) {
      const cohort = await tx.query.cohorts.findFirst({ where: eq(cohorts.name, dep.target) });
      if (!cohort || !matches(parseSelectorOrThrow(cohort.selector), device.labels)) continue;
      const depBundle = (await tx.query.bundles.findFirst({ where: eq(bundles.id, dep.bundleId) }))!;
      const target = (cohort.preferVariant && (await existingVariantBundle(tx, depBundle, cohort.preferVariant))) || dep.bundleId;
      if (current?.bundleId === target) return false;
      // A direct device deployment newer than the cohort's wins.
      if (current && current.updatedAt > dep.createdAt && !current.cohort) return false;
      await desired.assign(tx, target, [deviceId], { deploymentId: dep.id, cohort: dep.target });
      return true;
    }
    return false;
  });
  if (assigned) await desired.publish([deviceId]);
  return assigned;
}

export async function listDeployments(db: Db, page: { limit: number; offset: number }) {
  return db.select().from(deployments).orderBy(desc(deployments.createdAt)).limit(page.limit).offset(page.offset);
}
