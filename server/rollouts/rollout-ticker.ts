// Advances running rollouts; called by the scheduler on every tick while this replica holds the lease.
// Per rollout, in one transaction: give the current stage's devices the bundle (late joiners of the
// cohort included), read what they report, check the gates, and then either wait, advance after the
// bake time, finish (recording a cohort deployment so later joiners converge), or — on a failed
// gate — pause or roll the stage back, as the rollout's gates say.
import { and, eq, inArray } from 'drizzle-orm';
import type { Logger } from 'pino';
import { recordAudit } from '../audit/audit-log.ts';
import { recordEvent } from '../events/event-log.ts';
import type { Db, Tx } from '../db/client.ts';
import { deployments, deviceDesired, devices, rollouts } from '../db/schema.ts';
import type { DesiredState } from '../deployments/desired-state.ts';
import { ServiceError } from '../errors.ts';
import { RolloutGates } from '../jobs/retrain-policy.ts';
import { assignedBundle, assignForRollout, orderedMembers, rollBack, ROLLOUT_ACTOR, type RolloutRow } from './rollout-service.ts';
import { stageTelemetryTotals } from './stage-error-rate.ts';
import { stageSize } from './stable-order.ts';

export interface StageHealth {
  devices: number;
  active: number;
  failed: string[];
  pending: number;
  errorRate: number | null;
}

interface Reported {
  state?: string;
  active?: { bundleId?: string } | null;
  desired?: { bundleId?: string } | null;
}

async function stageHealth(tx: Tx, row: RolloutRow, deviceIds: string[], gates: RolloutGates): Promise<StageHealth> {
  const rows = deviceIds.length ? await tx.select({ id: devices.id, reported: devices.reported }).from(devices).where(inArray(devices.id, deviceIds)) : [];
  // The bundle the devices were actually given (a preferred variant's), not necessarily the rollout's.
  const bundleId = assignedBundle(row);
  let active = 0;
  const failed: string[] = [];
  for (const d of rows) {
    const r = (d.reported ?? {}) as Reported;
    if (r.active?.bundleId === bundleId && r.state === 'active') active++;
    // "Installed" is not "healthy": a failed or rolled-back update of this bundle counts against the gate.
    else if ((r.state === 'failed' || r.state === 'rolled_back') && r.desired?.bundleId === bundleId) failed.push(d.id);
  }
  let errorRate: number | null = null;
  if (gates.maxErrorRate !== undefined && deviceIds.length) {
    const windowS = Math.max(60, Math.ceil((Date.now() - Date.parse(row.stageStartedAt)) / 1000));
    const end = new Date();
    const t = await stageTelemetryTotals(tx, deviceIds, new Date(end.getTime() - windowS * 1000), end);
    const total = t.inferences + t.errors;
    errorRate = total > 0 ? t.errors / total : null;
  }
  return { devices: deviceIds.length, active, failed, pending: deviceIds.length - active - failed.length, errorRate };
}

/** One pass over every running rollout; returns the ids whose state changed. */
export async function tickRollouts(db: Db, desired: DesiredState, logger: Logger, now = new Date()): Promise<string[]> {
  const running = await db.select().from(rollouts).where(eq(rollouts.status, 'running'));
  const changed: string[] = [];
  for (const row of running) {
    try {
      const { publish, transition } = await db.transaction((tx) => tickOne(tx, desired, row, now));
      if (publish.length) await desired.publish(publish);
      if (transition) {
        changed.push(row.id);
        logger.info({ rollout: row.id, cohort: row.cohort, transition }, 'rollout');
      }
    } catch (err) {
      // A cohort deleted under a rollout, a bundle gone: log and keep ticking the others.
      if (err instanceof ServiceError) logger.warn({ rollout: row.id, err: err.message }, 'rollout tick skipped');
      else logger.error({ err, rollout: row.id }, 'rollout tick failed');
    }
  }
  return changed;
}

async function tickOne(tx: Tx, desired: DesiredState, row: RolloutRow, now: Date): Promise<{ publish: string[]; transition: string | null }> {
  const gates = RolloutGates.parse(row.gates);
  const ordered = await orderedMembers(tx, row.cohort);
  const target = ordered.slice(0, stageSize(ordered.length, row.stages[row.stage]));
  const publish = await assignMissing(tx, desired, row, target);
  const health = await stageHealth(tx, row, target, gates);
  const at = now.toISOString();
  const bakedS = (now.getTime() - Date.parse(row.stageStartedAt)) / 1000;
  const check: Record<string, unknown> = { at, stage: row.stage, ...health, bakedS: Math.floor(bakedS) };
  const update = (set: Partial<RolloutRow>) =>
    tx
      .update(rollouts)
      .set({ ...set, lastCheck: check, updatedAt: at })
      .where(and(eq(rollouts.id, row.id), eq(rollouts.status, 'running'), eq(rollouts.stage, row.stage)))
      .returning({ id: rollouts.id });

  const failedGate =
    health.failed.length > gates.maxFailedUpdates
      ? `${health.failed.length} failed update(s) (${health.failed.join(', ')}), at most ${gates.maxFailedUpdates} allowed`
      : gates.maxErrorRate !== undefined && health.errorRate !== null && health.errorRate > gates.maxErrorRate
        ? `error rate ${health.errorRate.toFixed(4)} above ${gates.maxErrorRate}`
        : null;
  if (failedGate) {
    check.verdict = `gate failed: ${failedGate}`;
    if (gates.onFailure === 'rollback') {
      const back = await rollBack(tx, desired, row);
      if (!(await update({ status: 'aborted' })).length) return { publish: [], transition: null };
      await recordAudit(tx, ROLLOUT_ACTOR, 'rollout.rollback', row.id, { reason: failedGate, devices: back.length, to: row.previousBundleId });
      await recordEvent(tx, 'rollout.rolled_back', row.id, { rolloutId: row.id, cohort: row.cohort, stage: row.stage, reason: failedGate, devices: back.length, to: row.previousBundleId });
      return { publish: [...publish, ...back], transition: 'rolled back' };
    }
    if (!(await update({ status: 'paused' })).length) return { publish: [], transition: null };
    await recordAudit(tx, ROLLOUT_ACTOR, 'rollout.pause', row.id, { reason: failedGate });
    await recordEvent(tx, 'rollout.paused', row.id, { rolloutId: row.id, cohort: row.cohort, stage: row.stage, reason: failedGate });
    return { publish, transition: 'paused' };
  }

  const healthy = health.devices > 0 && health.active === health.devices;
  if (!healthy || bakedS < row.bakeS) {
    check.verdict = health.devices === 0 ? 'waiting: the cohort has no devices' : !healthy ? `waiting: ${health.active} of ${health.devices} active` : `baking: ${Math.floor(bakedS)} of ${row.bakeS} s`;
    await update({});
    return { publish, transition: null };
  }
  if (row.stage + 1 >= row.stages.length) {
    check.verdict = 'succeeded';
    if (!(await update({ status: 'succeeded' })).length) return { publish: [], transition: null };
    // A cohort deployment of the rollout's bundle, as a direct cohort deployment records it (the parent,
    // not the variant): late joiners get it through reconcileDevice, which applies the cohort's
    // variant preference the same way.
    await tx.insert(deployments).values({ id: row.id.replace(/^rol_/, 'dep_'), bundleId: row.bundleId, targetKind: 'cohort', target: row.cohort, deviceCount: ordered.length, createdBy: ROLLOUT_ACTOR });
    await recordAudit(tx, ROLLOUT_ACTOR, 'rollout.succeeded', row.id, { cohort: row.cohort, devices: ordered.length });
    await recordEvent(tx, 'rollout.completed', row.id, { rolloutId: row.id, cohort: row.cohort, stage: row.stage, devices: ordered.length });
    return { publish, transition: 'succeeded' };
  }
  const nextStage = row.stage + 1;
  const nextTarget = ordered.slice(0, stageSize(ordered.length, row.stages[nextStage]));
  check.verdict = `advanced to stage ${nextStage + 1} of ${row.stages.length}`;
  if (!(await update({ stage: nextStage, stageStartedAt: at })).length) return { publish: [], transition: null };
  const added = await assignMissing(tx, desired, { ...row, stage: nextStage }, nextTarget);
  await recordAudit(tx, ROLLOUT_ACTOR, 'rollout.advance', row.id, { stage: nextStage, fraction: row.stages[nextStage], devices: nextTarget.length });
  await recordEvent(tx, 'rollout.stage_advanced', row.id, { rolloutId: row.id, cohort: row.cohort, stage: nextStage, fraction: row.stages[nextStage], devices: nextTarget.length });
  return { publish: [...publish, ...added], transition: `stage ${nextStage + 1}` };
}

/** Assigns the rollout's assigned bundle to target devices that do not have it as desired state yet; returns them. */
async function assignMissing(tx: Tx, desired: DesiredState, row: RolloutRow, target: string[]): Promise<string[]> {
  if (!target.length) return [];
  const have = new Set((await tx.select({ id: deviceDesired.deviceId }).from(deviceDesired).where(and(inArray(deviceDesired.deviceId, target), eq(deviceDesired.bundleId, assignedBundle(row))))).map((r) => r.id));
  const missing = target.filter((id) => !have.has(id));
  await assignForRollout(tx, desired, row, missing);
  return missing;
}
