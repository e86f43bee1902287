// Advances running rollouts; called by the scheduler on every tick while this replica holds the lease.
// Per rollout, in one transaction: give the current stage's devices what the stage gives them (the
// shadow candidate beside their bundle in the shadow phase, the bundle itself afterwards; late joiners
// of the cohort included), measure every gate (rollout-gates.ts), and then either wait, advance after
// the bake time, finish (recording a cohort deployment so later joiners converge), or — on a failed
// gate, or a gate still waiting past the stage's limit — pause or roll back, as the rollout's gates
// say. Devices taken over by a newer rollout are recorded superseded and no longer counted. The
// rollout succeeds only when its last stage is complete (rollout-gates.ts, `stageComplete`): every
// device active or failed, or timed out at the stage limit and counted as a failed update.
import { and, eq, inArray, sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { recordAudit } from '../audit/audit-log.ts';
import { recordEvent } from '../events/event-log.ts';
import type { Db, Tx } from '../db/client.ts';
import { inIds } from '../db/in-ids.ts';
import { deployments, deviceDesired, devices, rollouts } from '../db/schema.ts';
import type { DesiredState } from '../deployments/desired-state.ts';
import { ServiceError } from '../errors.ts';
import { RolloutGates } from '../jobs/retrain-policy.ts';
import { shadowGates, shadowReports, stageGates, stageWindow, STAGE_COMPLETE, type GateResult, type StageDevices } from './rollout-gates.ts';
import { assignedBundle, assignForRollout, endShadow, orderedMembers, rollBack, ROLLOUT_ACTOR, shadowTargets, startShadow, type RolloutRow } from './rollout-service.ts';
import { keepStageAggregates, stageAggregate, type StageAggregate } from './stage-aggregate.ts';
import { stageSize } from './stable-order.ts';

type Outcomes = NonNullable<RolloutRow['outcomes']>;

/** One pass over every running rollout; returns the ids whose state changed. */
export async function tickRollouts(db: Db, desired: DesiredState, logger: Logger, now = new Date()): Promise<string[]> {
  const running = await db.select().from(rollouts).where(eq(rollouts.status, 'running'));
  keepStageAggregates(db, new Set(running.map((r) => r.id)));
  const changed: string[] = [];
  for (const row of running) if (await tickRollout(db, desired, logger, row, now)) changed.push(row.id);
  return changed;
}

/**
 * One rollout's tick; true when its state changed. `seen` is the row as listed before the tick's
 * transaction: the tick works on the row as it is inside that transaction, and does nothing when the
 * rollout stopped running meanwhile (a write waits for the one before it, e.g. an abort with rollback:
 * working on the listed row, the tick would give the rolled-back devices the bundle again).
 */
export async function tickRollout(db: Db, desired: DesiredState, logger: Logger, seen: RolloutRow, now = new Date()): Promise<boolean> {
  try {
    await readStageOutsideLock(db, seen, now);
    const { publish, transition } = await db.transaction(async (tx) => {
      const [row] = await tx.select().from(rollouts).where(and(eq(rollouts.id, seen.id), eq(rollouts.status, 'running')));
      return row ? tickOne(tx, desired, row, now, stageAggregate(db, row)) : { publish: [], transition: null };
    });
    if (publish.length) await desired.publish(publish);
    if (!transition) return false;
    logger.info({ rollout: seen.id, cohort: seen.cohort, transition }, 'rollout');
    return true;
  } catch (err) {
    // A cohort deleted under a rollout, a bundle gone: log and keep ticking the others.
    if (err instanceof ServiceError) logger.warn({ rollout: seen.id, err: err.message }, 'rollout tick skipped');
    else logger.error({ err, rollout: seen.id }, 'rollout tick failed');
    return false;
  }
}

/**
 * The stage's rollups read before the tick's write transaction (the stage aggregate keeps them), so the
 * transaction, which holds the database's write lock and this process's write queue, reads nothing of them
 * again when the stage is unchanged inside it: telemetry a few milliseconds older, for the same stage and
 * devices. A stage that moved meanwhile gets a new aggregate, read inside. Best effort: a failure here
 * leaves the read to the transaction.
 */
async function readStageOutsideLock(db: Db, seen: RolloutRow, now: Date): Promise<void> {
  if (seen.phase !== 'stages') return;
  const aggregate = stageAggregate(db, seen);
  // The devices of the last tick (a device that joined since is read inside); the cohort's order on the first.
  let ids = aggregate.heldIds();
  if (!ids.length) {
    const ordered = await orderedMembers(db, seen.cohort).catch(() => [] as string[]);
    ids = ordered.slice(0, stageSize(ordered.length, seen.stages[seen.stage]));
  }
  // Which of them switched when: each device's latency counts from its own cut (stageWindow).
  const stage = await stageDevices(db, seen, ids).catch(() => null);
  if (!stage) return;
  const window = stageWindow({ gates: RolloutGates.parse(seen.gates), stage, stageStartedAt: seen.stageStartedAt, hasPrevious: seen.previousBundleId !== null, now });
  if (!window || !aggregate.fits(window)) return;
  await aggregate.read(db, ids, window).catch(() => undefined);
}

/** Devices whose desired state a newer rollout wrote: the newer rollout wins them. */
async function supersededBy(tx: Tx, row: RolloutRow, ids: string[]): Promise<Map<string, string>> {
  if (!ids.length) return new Map();
  // Only the devices another rollout wrote (a handful, if any): a stage's 10,000 desired rows brought into
  // JavaScript to find none took 0.1–0.3 s of the write transaction.
  const shadowOwner = sql`json_extract(${deviceDesired.shadow}, '$.rolloutId')`;
  const rows = await tx
    .select({ id: deviceDesired.deviceId, deploymentId: deviceDesired.deploymentId, shadow: deviceDesired.shadow })
    .from(deviceDesired)
    .where(and(inIds(deviceDesired.deviceId, ids), sql`((substr(${deviceDesired.deploymentId}, 1, 4) = 'rol_' and ${deviceDesired.deploymentId} != ${row.id}) or (substr(${shadowOwner}, 1, 4) = 'rol_' and ${shadowOwner} != ${row.id}))`));
  const owners = new Set(rows.flatMap((r) => [r.deploymentId, r.shadow?.rolloutId]).filter((x): x is string => !!x && x !== row.id && x.startsWith('rol_')));
  if (!owners.size) return new Map();
  const newer = new Set(
    (await tx.select({ id: rollouts.id, createdAt: rollouts.createdAt }).from(rollouts).where(inArray(rollouts.id, [...owners])))
      .filter((r) => r.createdAt > row.createdAt || (r.createdAt === row.createdAt && r.id > row.id))
      .map((r) => r.id),
  );
  const out = new Map<string, string>();
  for (const r of rows) {
    const by = [r.deploymentId, r.shadow?.rolloutId].find((x) => x && newer.has(x));
    if (by) out.set(r.id, by);
  }
  return out;
}

async function tickOne(tx: Tx, desired: DesiredState, row: RolloutRow, now: Date, aggregate: StageAggregate): Promise<{ publish: string[]; transition: string | null }> {
  const gates = RolloutGates.parse(row.gates);
  const ordered = await orderedMembers(tx, row.cohort);
  const at = now.toISOString();
  const outcomes: Outcomes = { ...(row.outcomes ?? {}) };
  const stageAll = ordered.slice(0, stageSize(ordered.length, row.stages[row.stage]));
  for (const [id, by] of await supersededBy(tx, row, stageAll)) if (!outcomes[id]) outcomes[id] = { state: 'superseded', reason: `taken over by the newer rollout ${by}`, at };
  const target = stageAll.filter((id) => !outcomes[id]);
  const bakedS = (now.getTime() - Date.parse(row.stageStartedAt)) / 1000;
  const shadowPhase = row.phase === 'shadow';
  const check: Record<string, unknown> = { at, stage: shadowPhase ? 'shadow' : row.stage, bakedS: Math.floor(bakedS), devices: target.length };
  const history = ((row.lastCheck as { history?: unknown[] } | null)?.history ?? []) as unknown[];
  const update = (set: Partial<RolloutRow>, finished = false) =>
    tx
      .update(rollouts)
      .set({ ...set, outcomes, lastCheck: { ...check, history: finished ? [...history, { stage: check.stage, at, verdict: check.verdict, gates: check.gates }] : history }, updatedAt: at })
      .where(and(eq(rollouts.id, row.id), eq(rollouts.status, 'running'), eq(rollouts.stage, row.stage), eq(rollouts.phase, row.phase)))
      .returning({ id: rollouts.id });

  let publish: string[];
  let results: GateResult[];
  let notReporting: string[];
  let failedIds: string[] = [];
  let holdS: number;
  if (shadowPhase) {
    const shadowIds = await shadowTargets(tx, target);
    publish = await startShadow(tx, desired, row, shadowIds);
    const reports = await shadowReports(tx, row.id, assignedBundle(row), shadowIds);
    results = shadowGates(gates, reports, shadowIds.length);
    notReporting = shadowIds.filter((id) => reports.get(id)?.state !== 'shadowing');
    holdS = row.shadow!.durationS;
    check.shadow = Object.fromEntries([...reports].map(([id, r]) => [id, { state: r.state, compared: r.total.compared, latencyMs: r.total.latencyMs }]));
  } else {
    publish = await assignMissing(tx, desired, row, target);
    const stage = await stageDevices(tx, row, target);
    results = await stageGates(tx, { gates, stage: { ids: target, ...stage }, bundleId: assignedBundle(row), cohort: row.cohort, stageStartedAt: row.stageStartedAt, rolloutCreatedAt: row.createdAt, hasPrevious: row.previousBundleId !== null, now, bakeS: row.bakeS, last: row.stage + 1 >= row.stages.length, aggregate });
    // A set: `includes` on both lists per device was quadratic (≈ 3 s of a tick at 10,000 devices).
    const done = new Set([...stage.active, ...stage.failed]);
    notReporting = target.filter((id) => !done.has(id));
    failedIds = stage.failed;
    holdS = row.bakeS;
  }
  check.gates = results;

  const failed = results.filter((g) => g.status === 'fail');
  // A gate with no data after the bake holds the stage only up to a stage limit; without one it is
  // recorded in the verdict and history but not waited on (rollout-gates.ts says why).
  const noData = results.filter((g) => g.status === 'no-data');
  let timedOutNote = '';
  let waiting = [...results.filter((g) => g.status === 'waiting'), ...(gates.stageTimeoutS !== undefined ? noData : [])];
  let failure = failed.length ? failed.map((g) => `${g.name} ${g.value === null ? '–' : round(g.value)} not ${g.threshold} (${g.reason})`).join('; ') : null;
  if (!failure && waiting.length && gates.stageTimeoutS !== undefined && bakedS >= gates.stageTimeoutS) {
    // Never stuck: past the stage's limit, whoever did not report is timed out. When only the last
    // stage's completion waited, the timed-out devices count as failed updates and the stage completes
    // within maxFailedUpdates; any other gate still waiting fails the stage.
    for (const id of notReporting) outcomes[id] = { state: 'timed_out', reason: `no report within the stage limit of ${gates.stageTimeoutS} s`, at };
    const unfinished = failedIds.length + notReporting.length;
    const onlyCompletion = waiting.every((g) => g.name === STAGE_COMPLETE);
    if (onlyCompletion && unfinished <= gates.maxFailedUpdates) {
      settleCompletion(results, notReporting, unfinished, gates.stageTimeoutS);
      timedOutNote = notReporting.length ? ` (timed out at the stage limit: ${someIds(notReporting)})` : '';
      waiting = [];
    } else {
      const counted = onlyCompletion ? ` (${unfinished} failed or timed out, more than maxFailedUpdates ${gates.maxFailedUpdates})` : '';
      failure = `stage limit of ${gates.stageTimeoutS} s passed with ${waiting.map((g) => `${g.name} ${g.status} (${g.reason})`).join(', ')}${notReporting.length ? `; timed out: ${notReporting.join(', ')}` : ''}${counted}`;
    }
  }
  if (failure) {
    check.verdict = `gate failed: ${failure}`;
    if (gates.onFailure === 'rollback') {
      // The row first: re-signed manifests written by a tick that then lost the row (paused or aborted
      // meanwhile) would be committed but never published, leaving devices on the candidate unnotified.
      if (!(await update({ status: 'aborted' }, true)).length) return { publish: [], transition: null };
      const back = shadowPhase ? await endShadow(tx, desired, row) : await rollBack(tx, desired, row);
      await recordAudit(tx, ROLLOUT_ACTOR, 'rollout.rollback', row.id, { reason: failure, devices: back.length, to: shadowPhase ? null : row.previousBundleId });
      await recordEvent(tx, 'rollout.rolled_back', row.id, { rolloutId: row.id, cohort: row.cohort, stage: row.stage, reason: failure, devices: back.length, to: shadowPhase ? null : row.previousBundleId });
      return { publish: [...publish, ...back], transition: 'rolled back' };
    }
    if (!(await update({ status: 'paused' }, true)).length) return { publish: [], transition: null };
    await recordAudit(tx, ROLLOUT_ACTOR, 'rollout.pause', row.id, { reason: failure });
    await recordEvent(tx, 'rollout.paused', row.id, { rolloutId: row.id, cohort: row.cohort, stage: row.stage, reason: failure });
    return { publish, transition: 'paused' };
  }

  if (waiting.length || bakedS < holdS) {
    check.verdict = waiting.length ? `waiting: ${waiting.map((g) => `${g.name}${g.status === 'no-data' ? ' no-data' : ''} (${g.reason})`).join(', ')}` : `baking: ${Math.floor(bakedS)} of ${holdS} s`;
    await update({});
    return { publish, transition: null };
  }
  const unmeasured = noData.length ? ` (not measured: ${noData.map((g) => `${g.name} no-data`).join(', ')})` : '';
  if (shadowPhase) {
    // The candidate behaved: the switch starts with the first stage (its devices' shadow ends with the new manifest).
    check.verdict = `shadow passed; stage 1 of ${row.stages.length}`;
    if (!(await update({ phase: 'stages', stageStartedAt: at }, true)).length) return { publish: [], transition: null };
    const first = ordered.slice(0, stageSize(ordered.length, row.stages[0])).filter((id) => !outcomes[id]);
    const added = await assignMissing(tx, desired, { ...row, phase: 'stages' }, first);
    await recordAudit(tx, ROLLOUT_ACTOR, 'rollout.advance', row.id, { stage: 0, from: 'shadow', fraction: row.stages[0], devices: first.length });
    await recordEvent(tx, 'rollout.stage_advanced', row.id, { rolloutId: row.id, cohort: row.cohort, stage: 0, fraction: row.stages[0], devices: first.length });
    return { publish: [...publish, ...added], transition: 'stage 1' };
  }
  if (row.stage + 1 >= row.stages.length) {
    check.verdict = `succeeded${unmeasured}${timedOutNote}`;
    if (!(await update({ status: 'succeeded' }, true)).length) return { publish: [], transition: null };
    // A cohort deployment of the rollout's bundle, as a direct cohort deployment records it (the parent,
    // not the variant): late joiners get it through reconcileDevice, which applies the cohort's
    // variant preference the same way.
    await tx.insert(deployments).values({ id: row.id.replace(/^rol_/, 'dep_'), bundleId: row.bundleId, targetKind: 'cohort', target: row.cohort, deviceCount: ordered.length, createdBy: ROLLOUT_ACTOR });
    await recordAudit(tx, ROLLOUT_ACTOR, 'rollout.succeeded', row.id, { cohort: row.cohort, devices: ordered.length });
    await recordEvent(tx, 'rollout.completed', row.id, { rolloutId: row.id, cohort: row.cohort, stage: row.stage, devices: ordered.length });
    return { publish, transition: 'succeeded' };
  }
  const nextStage = row.stage + 1;
  const nextTarget = ordered.slice(0, stageSize(ordered.length, row.stages[nextStage])).filter((id) => !outcomes[id]);
  check.verdict = `advanced to stage ${nextStage + 1} of ${row.stages.length}${unmeasured}`;
  if (!(await update({ stage: nextStage, stageStartedAt: at }, true)).length) return { publish: [], transition: null };
  const added = await assignMissing(tx, desired, { ...row, stage: nextStage }, nextTarget);
  await recordAudit(tx, ROLLOUT_ACTOR, 'rollout.advance', row.id, { stage: nextStage, fraction: row.stages[nextStage], devices: nextTarget.length });
  await recordEvent(tx, 'rollout.stage_advanced', row.id, { rolloutId: row.id, cohort: row.cohort, stage: nextStage, fraction: row.stages[nextStage], devices: nextTarget.length });
  return { publish: [...publish, ...added], transition: `stage ${nextStage + 1}` };
}

/** The last stage's gates once its limit timed out the devices still updating: counted as failed updates, within the limit. */
function settleCompletion(results: GateResult[], timedOut: string[], unfinished: number, limitS: number): void {
  for (const g of results) {
    if (g.name === 'failedUpdates') Object.assign(g, { value: unfinished, reason: `${g.reason}; timed out (counted as failed): ${someIds(timedOut)}` });
    if (g.name === STAGE_COMPLETE) Object.assign(g, { status: 'pass', reason: `timed out at the stage limit of ${limitS} s: ${someIds(timedOut)} (counted as failed updates)` });
  }
}

/** Device ids for a verdict: the first ten and how many in all (a stage may hold thousands). */
function someIds(ids: string[]): string {
  return ids.length > 10 ? `${ids.slice(0, 10).join(', ')}, … (${ids.length})` : ids.join(', ');
}

function round(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(4);
}

/**
 * Which of the stage's devices report the rollout's bundle active, and which failed on it. SQLite reads
 * the three fields from each `reported` document (it holds the agent's transitions too: parsing 10,000
 * of them whole was a good part of a tick) and answers only the devices that are one or the other.
 */
async function stageDevices(tx: Tx, row: RolloutRow, deviceIds: string[]): Promise<Omit<StageDevices, 'ids'>> {
  const switchedAt = new Map<string, number>();
  if (!deviceIds.length) return { active: [], failed: [], switchedAt };
  // The bundle the devices were actually given (a preferred variant's), not necessarily the rollout's.
  const bundleId = assignedBundle(row);
  const state = sql`json_extract(${devices.reported}, '$.state')`;
  // "Installed" is not "healthy": a failed or rolled-back update of this bundle counts against the gate.
  const rows = await tx.all<{ id: string; active: number; activatedAt: string | null }>(sql`
    select ${devices.id} as id, ${state} = 'active' as active, json_extract(${devices.reported}, '$.active.activatedAt') as activatedAt from ${devices}
    where ${inIds(devices.id, deviceIds)} and (
      (${state} = 'active' and json_extract(${devices.reported}, '$.active.bundleId') = ${bundleId})
      or (${state} in ('failed', 'rolled_back') and json_extract(${devices.reported}, '$.desired.bundleId') = ${bundleId}))`);
  const active: string[] = [];
  const failed: string[] = [];
  for (const r of rows) {
    (r.active ? active : failed).push(r.id);
    // The device's own clock, as its telemetry's `at`; NaN (unreadable) is taken as the stage's start (switchTime in rollout-gates.ts).
    if (r.active) switchedAt.set(r.id, r.activatedAt ? Date.parse(r.activatedAt) : Number.NaN);
  }
  return { active, failed, switchedAt };
}

/** Assigns the rollout's assigned bundle to target devices that do not have it as desired state yet; returns them. */
async function assignMissing(tx: Tx, desired: DesiredState, row: RolloutRow, target: string[]): Promise<string[]> {
  if (!target.length) return [];
  // Only the missing ones come back (usually none): not every target's row, to find them in JavaScript.
  const missing = (
    await tx.all<{ id: string }>(sql`
      select t.value as id from json_each(${JSON.stringify(target)}) t
      where not exists (select 1 from ${deviceDesired} d where d.device_id = t.value and d.bundle_id = ${assignedBundle(row)})
      order by t.key`)
  ).map((r) => r.id);
  await assignForRollout(tx, desired, row, missing);
  return missing;
}
