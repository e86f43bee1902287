// Rollout gating by a version's status: a `rejected` version (it broke a quality or fairness budget)
// is not offered for rollout — bundle builds and deployments refuse it — until an admin records an
// override with a reason. The override is audited and shown with the version.
import { eq } from 'drizzle-orm';
import { recordAudit } from '../audit/audit-log.ts';
import { recordEvent } from '../events/event-log.ts';
import type { Db } from '../db/client.ts';
import { modelVersions } from '../db/schema.ts';
import { Conflict } from '../errors.ts';
import { formatRef } from './model-ref.ts';
import { resolveVersion, versionView, type VersionRow, type VersionView } from './model-service.ts';

/** Throws 409 when `version` is rejected and not overridden. */
export function assertRollable(version: Pick<VersionRow, 'status' | 'statusReason' | 'override'>, label: string): void {
  if (version.status !== 'rejected' || version.override) return;
  throw Conflict(`${label} is rejected (${version.statusReason ?? 'it broke a budget'}); it is not offered for rollout unless an admin overrides: \`flotilla models override ${label} --reason "…"\``, {
    reason: 'version_rejected',
    statusReason: version.statusReason,
  });
}

export async function overrideRejection(db: Db, ref: string, reason: string, actor: string): Promise<VersionView> {
  return db.transaction(async (tx) => {
    const row = await resolveVersion(tx, ref);
    const label = formatRef(row.modelName, row.version);
    if (row.status !== 'rejected') throw Conflict(`${label} is ${row.status}, not rejected: there is nothing to override`);
    const override = { by: actor, at: new Date().toISOString(), reason };
    await tx.update(modelVersions).set({ override }).where(eq(modelVersions.id, row.id));
    await recordAudit(tx, actor, 'model.version.override', label, { reason, statusReason: row.statusReason });
    await recordEvent(tx, 'model.version_overridden', label, { model: row.modelName, version: row.version, by: actor, reason });
    return versionView(tx, row.id);
  });
}
