// What ingest needs to know about the devices of one batch, loaded with a handful of queries per
// batch (not per message) and never cached across batches, so a relabel, a deployment or a new
// reference profile applies to the next batch on every replica.
import { eq, inArray } from 'drizzle-orm';
import type { SketchLayout } from '../../protocol/sketch/feature-set-sketch.ts';
import { matches, parseSelector, type SelectorTerm } from '../cohorts/selector.ts';
import type { Tx } from '../db/client.ts';
import { bundles, cohorts, deviceDesired, devices, models, modelVersions, referenceProfiles } from '../db/schema.ts';

export interface DeviceContext {
  id: string;
  status: 'pending' | 'approved' | 'revoked';
  /** The bundle the server asked for and the one the device last reported running (either may send stats). */
  desiredBundleId: string | null;
  activeBundleId: string | null;
  /** Cohorts whose selector matches the device now, plus the cohort its desired state came from. */
  cohorts: string[];
}

export interface BundleInfo {
  id: string;
  modelVersionId: number;
  modelName: string;
  version: number;
}

export interface BatchContext {
  devices: Map<string, DeviceContext>;
  bundles: Map<string, BundleInfo>;
  layouts: Map<number, SketchLayout>;
}

const CHUNK = 500;

async function inChunks<T, R>(items: T[], fn: (chunk: T[]) => Promise<R[]>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(...(await fn(items.slice(i, i + CHUNK))));
  return out;
}

/** Loads devices, their bundles and cohorts (and, with `layouts`, the reference layouts of the bundles' versions). */
export async function loadBatchContext(tx: Tx, deviceIds: string[], opts: { layouts: boolean }): Promise<BatchContext> {
  const ids = [...new Set(deviceIds)];
  const deviceRows = await inChunks(ids, (c) =>
    tx.select({ id: devices.id, status: devices.status, labels: devices.labels, reported: devices.reported }).from(devices).where(inArray(devices.id, c)),
  );
  const desiredRows = await inChunks(ids, (c) =>
    tx.select({ deviceId: deviceDesired.deviceId, bundleId: deviceDesired.bundleId, cohort: deviceDesired.cohort }).from(deviceDesired).where(inArray(deviceDesired.deviceId, c)),
  );
  const desired = new Map(desiredRows.map((r) => [r.deviceId, r]));
  const cohortRows = await tx.select({ name: cohorts.name, selector: cohorts.selector }).from(cohorts);
  const selectors: Array<{ name: string; terms: SelectorTerm[] }> = [];
  for (const c of cohortRows) {
    try {
      selectors.push({ name: c.name, terms: parseSelector(c.selector) });
    } catch {
      // Stored selectors were validated on write; skip one that no longer parses rather than fail ingest.
    }
  }
  const cohortNames = new Set(cohortRows.map((c) => c.name));

  const ctx: BatchContext = { devices: new Map(), bundles: new Map(), layouts: new Map() };
  const bundleIds = new Set<string>();
  for (const d of deviceRows) {
    const want = desired.get(d.id);
    const active = (d.reported as { active?: { bundleId?: unknown } | null } | null)?.active?.bundleId;
    const member = new Set(selectors.filter((s) => matches(s.terms, d.labels)).map((s) => s.name));
    if (want?.cohort && cohortNames.has(want.cohort)) member.add(want.cohort);
    const dc: DeviceContext = {
      id: d.id,
      status: d.status,
      desiredBundleId: want?.bundleId ?? null,
      activeBundleId: typeof active === 'string' ? active : null,
      cohorts: [...member].sort(),
    };
    if (dc.desiredBundleId) bundleIds.add(dc.desiredBundleId);
    if (dc.activeBundleId) bundleIds.add(dc.activeBundleId);
    ctx.devices.set(d.id, dc);
  }
  if (bundleIds.size) {
    const rows = await inChunks([...bundleIds], (c) =>
      tx
        .select({ id: bundles.id, modelVersionId: bundles.modelVersionId, modelName: models.name, version: modelVersions.version })
        .from(bundles)
        .innerJoin(modelVersions, eq(modelVersions.id, bundles.modelVersionId))
        .innerJoin(models, eq(models.id, modelVersions.modelId))
        .where(inArray(bundles.id, c)),
    );
    for (const r of rows) ctx.bundles.set(r.id, r);
  }
  if (opts.layouts && ctx.bundles.size) {
    const versionIds = [...new Set([...ctx.bundles.values()].map((b) => b.modelVersionId))];
    const rows = await tx.select({ id: referenceProfiles.modelVersionId, layout: referenceProfiles.layout }).from(referenceProfiles).where(inArray(referenceProfiles.modelVersionId, versionIds));
    for (const r of rows) ctx.layouts.set(r.id, r.layout);
  }
  return ctx;
}
