// Staged rollouts: one bundle onto one cohort in stages (e.g. 10 %, then everyone). Each stage gives
// the first ceil(fraction · n) devices of the cohort's stable order the bundle (signed manifests via
// DesiredState); the ticker (rollout-ticker.ts) advances, pauses or rolls back. State lives in the
// rollouts table, so it survives restarts and moves with the scheduler lease between replicas.
// A cohort preferring a variant (e.g. int8) gets the bundle of the version's variant child, resolved
// once at creation like a direct deployment (variant-bundles.ts) and kept as assignedBundleId: stage
// assignment, health checks and rollback all use that bundle.
import { and, desc, eq, inArray, isNotNull, sql } from 'drizzle-orm';
import { recordAudit } from '../audit/audit-log.ts';
import { recordEvent } from '../events/event-log.ts';
import { randomId } from '../auth/secrets.ts';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import { resolveBundle } from '../bundles/bundle-service.ts';
import { cohortMemberIds, getCohort } from '../cohorts/cohort-service.ts';
import type { Db, Tx } from '../db/client.ts';
import { inIds } from '../db/in-ids.ts';
import { bundles, deviceDesired, devices, models, modelVersions, rollouts } from '../db/schema.ts';
import { sameAssignment, type DesiredState } from '../deployments/desired-state.ts';
import { existingVariantBundle, variantBundleFor } from '../deployments/variant-bundles.ts';
import { Conflict, Invalid, NotFound } from '../errors.ts';
import { formatRef } from '../models/model-ref.ts';
import { RolloutGates, Stages } from '../jobs/retrain-policy.ts';
import { stableOrder, stageSize } from './stable-order.ts';

export type RolloutRow = typeof rollouts.$inferSelect;
export type RolloutStatus = RolloutRow['status'];

export interface RolloutInput {
  bundle: string;
  cohort: string;
  stages?: number[];
  bakeS?: number;
  gates?: Partial<RolloutGates>;
  /** A shadow stage before the switch: `share` of requests in (0, 1], for `durationS`, reported every `windowS`. */
  shadow?: { share: number; durationS?: number; windowS?: number };
  jobId?: string;
  actor: string;
  /** Lets the cohort's preferred variant bundle be built on the fly; without it only an existing variant bundle is used. */
  store?: ArtifactStore;
}

/** Where one device of a rollout stands (issue 14: every device ends active, failed, superseded or timed out). */
export const ROLLOUT_DEVICE_STATES = ['pending', 'notified', 'downloading', 'verifying', 'shadowing', 'active', 'failed', 'rolled_back', 'timed_out', 'superseded'] as const;
export type RolloutDeviceState = (typeof ROLLOUT_DEVICE_STATES)[number];

export interface RolloutDevice {
  id: string;
  stage: number;
  state: RolloutDeviceState;
  reason: string | null;
  desiredBundle: string | null;
  activeBundle: string | null;
  updateState: string | null;
}

export const SHADOW_DEFAULTS = { durationS: 1800, windowS: 60 } as const;

export interface RolloutView {
  id: string;
  bundleId: string;
  bundle: string;
  model: string;
  cohort: string;
  stages: number[];
  stage: number;
  status: RolloutStatus;
  bakeS: number;
  gates: RolloutGates;
  /** The shadow stage's settings, null without one; `phase` says whether it is still on. */
  shadow: { share: number; durationS: number; windowS: number } | null;
  phase: 'shadow' | 'stages';
  lastCheck: Record<string, unknown> | null;
  previousBundleId: string | null;
  /** The bundle the cohort's devices are given: bundleId, or its variant child's bundle when the cohort prefers a variant. */
  assignedBundleId: string;
  jobId: string | null;
  stageStartedAt: string;
  createdAt: string;
  createdBy: string | null;
  updatedAt: string | null;
}

export const ROLLOUT_ACTOR = 'system:rollouts';

/**
 * The cohort's approved members in stable order. Ids and labels only: every rollout tick and every read
 * of a rollout call this, and reading whole device rows (facts, last report) of the fleet each time was
 * most of a starved server's CPU while a stage's devices waited in its accept queue (bench/RESULTS.md,
 * "Downloads in a herd").
 */
export async function orderedMembers(tx: Tx, cohort: string): Promise<string[]> {
  return stableOrder(await cohortMemberIds(tx, cohort));
}

/** The bundle the rollout gives its devices: the variant bundle picked at creation, else the rollout's bundle. */
export function assignedBundle(row: Pick<RolloutRow, 'bundleId' | 'assignedBundleId'>): string {
  return row.assignedBundleId ?? row.bundleId;
}

/** Gives `deviceIds` the rollout's assigned bundle (signed manifests, inside the caller's transaction); publish afterwards. */
export async function assignForRollout(tx: Tx, desired: DesiredState, row: Pick<RolloutRow, 'id' | 'bundleId' | 'assignedBundleId' | 'cohort'>, deviceIds: string[]): Promise<void> {
  await desired.assign(tx, assignedBundle(row), deviceIds, { deploymentId: row.id, cohort: row.cohort });
}

/** The bundle most of the cohort's devices are meant to run now (what a rollback returns to). */
async function currentBundleOf(tx: Tx, deviceIds: string[], except: string[]): Promise<string | null> {
  if (!deviceIds.length) return null;
  const rows = await tx.select({ bundleId: deviceDesired.bundleId }).from(deviceDesired).where(inArray(deviceDesired.deviceId, deviceIds));
  const counts = new Map<string, number>();
  for (const r of rows) if (!except.includes(r.bundleId)) counts.set(r.bundleId, (counts.get(r.bundleId) ?? 0) + 1);
  let best: string | null = null;
  for (const [id, n] of counts) if (best === null || n > counts.get(best)!) best = id;
  return best;
}

export async function createRollout(db: Db, desired: DesiredState, input: RolloutInput): Promise<RolloutView> {
  const stages = Stages.safeParse(input.stages ?? [0.1, 1]);
  if (!stages.success) throw Invalid(`invalid stages: ${stages.error.issues[0].message}`);
  const gates = RolloutGates.safeParse(input.gates ?? {});
  if (!gates.success) throw Invalid(`invalid gates: ${gates.error.issues[0].path.join('.')}: ${gates.error.issues[0].message}`);
  const bakeS = input.bakeS ?? 300;
  if (!Number.isInteger(bakeS) || bakeS < 0) throw Invalid('bakeS must be a whole number of seconds ≥ 0');
  const shadow = input.shadow ? checkShadow(input.shadow) : null;
  // A stage limit shorter than the time a stage must run could never be met.
  const minStageS = Math.max(bakeS, shadow?.durationS ?? 0);
  if (gates.data.stageTimeoutS !== undefined && gates.data.stageTimeoutS < minStageS) {
    throw Invalid(`gates.stageTimeoutS (${gates.data.stageTimeoutS} s) is shorter than a stage must run (${minStageS} s of bake or shadow); raise it or shorten the bake`, { field: 'gates.stageTimeoutS' });
  }
  const id = randomId('rol', 8);
  // The cohort's preferred variant, resolved as a direct deployment does; a variant bundle is built
  // (once: later rollouts and deployments reuse it) before the transaction, as a build has its own.
  const bundle = await resolveBundle(db, input.bundle);
  const variant = (await getCohort(db, input.cohort)).preferVariant;
  const variantBundle = variant ? await (input.store ? variantBundleFor(db, input.store, bundle, variant, input.actor) : existingVariantBundle(db, bundle, variant)) : null;
  const target = variantBundle ?? bundle.id;
  const assigned = await db.transaction(async (tx) => {
    const ordered = await orderedMembers(tx, input.cohort);
    if (!ordered.length) throw Invalid(`cohort "${input.cohort}" has no approved devices: nothing to roll out to`, { hint: 'approve or label devices into the cohort (`flotilla cohorts show ' + input.cohort + '`), or pick another cohort' });
    const firstStage = ordered.slice(0, stageSize(ordered.length, stages.data[0]));
    if (shadow) await checkShadowable(tx, firstStage);
    const busy = await tx.query.rollouts.findFirst({ where: and(eq(rollouts.cohort, input.cohort), inArray(rollouts.status, ['running', 'paused'])) });
    if (busy) throw Conflict(`cohort "${input.cohort}" already has rollout ${busy.id} (${busy.status}); abort it first`, { references: [`rollout ${busy.id}`] });
    const row = {
      id,
      bundleId: bundle.id,
      cohort: input.cohort,
      stages: stages.data,
      stage: 0,
      status: 'running' as const,
      bakeS,
      gates: gates.data as unknown as Record<string, unknown>,
      shadow,
      phase: shadow ? ('shadow' as const) : ('stages' as const),
      previousBundleId: await currentBundleOf(tx, ordered, [bundle.id, target]),
      assignedBundleId: variantBundle,
      jobId: input.jobId ?? null,
      stageStartedAt: new Date().toISOString(),
      createdBy: input.actor,
    };
    await tx.insert(rollouts).values(row);
    // With a shadow stage the first stage's devices keep their bundle and get the candidate beside it.
    const first = shadow ? await startShadow(tx, desired, row, await shadowTargets(tx, firstStage)) : firstStage;
    if (!shadow) await assignForRollout(tx, desired, row, first);
    await recordAudit(tx, input.actor, 'rollout.create', id, {
      bundle: bundle.id,
      cohort: input.cohort,
      stages: stages.data,
      bakeS,
      devices: first.length,
      ...(shadow ? { shadow } : {}),
      job: input.jobId,
      ...(variantBundle ? { variant, variantBundle } : {}),
    });
    await recordEvent(tx, 'rollout.created', id, { rolloutId: id, bundleId: bundle.id, cohort: input.cohort, stages: stages.data, stage: 0, devices: first.length });
    return first;
  });
  await desired.publish(assigned);
  return getRollout(db, id);
}

async function toView(tx: Tx, row: RolloutRow): Promise<RolloutView> {
  const [b] = await tx
    .select({ name: bundles.name, model: models.name, version: modelVersions.version })
    .from(bundles)
    .innerJoin(modelVersions, eq(modelVersions.id, bundles.modelVersionId))
    .innerJoin(models, eq(models.id, modelVersions.modelId))
    .where(eq(bundles.id, row.bundleId));
  return {
    id: row.id,
    bundleId: row.bundleId,
    bundle: b?.name ?? row.bundleId,
    model: b ? formatRef(b.model, b.version) : '?',
    cohort: row.cohort,
    stages: row.stages,
    stage: row.stage,
    status: row.status,
    bakeS: row.bakeS,
    gates: RolloutGates.parse(row.gates),
    shadow: row.shadow ?? null,
    phase: row.phase,
    lastCheck: row.lastCheck ?? null,
    previousBundleId: row.previousBundleId,
    assignedBundleId: assignedBundle(row),
    jobId: row.jobId,
    stageStartedAt: row.stageStartedAt,
    createdAt: row.createdAt,
    createdBy: row.createdBy,
    updatedAt: row.updatedAt,
  };
}

export async function getRolloutRow(tx: Tx, id: string): Promise<RolloutRow> {
  const row = await tx.query.rollouts.findFirst({ where: eq(rollouts.id, id) });
  if (!row) throw NotFound(`rollout "${id}"`, { hint: 'list rollouts with `flotilla rollouts ls`' });
  return row;
}

export async function getRollout(tx: Tx, id: string): Promise<RolloutView> {
  return toView(tx, await getRolloutRow(tx, id));
}

/**
 * The values of a device's `reported` document a rollout's device state reads (rollout-ticker.ts reads the same),
 * each one json_extract to a scalar: rebuilding its parts as a JSON object to parse again per device took about twice
 * SQLite's time and a JSON.parse each (≈ 0.7 s of the 1.2 s `GET /rollouts/{id}` at 10,000 devices, load 12).
 */
const reportedAt = (p: string) => sql<string | null>`json_extract(${devices.reported}, ${p})`;
const reportedValues = {
  reported: sql<number>`${devices.reported} is not null`,
  state: reportedAt('$.state'),
  activeBundle: reportedAt('$.active.bundleId'),
  desiredBundle: reportedAt('$.desired.bundleId'),
  errorCode: reportedAt('$.lastError.code'),
  shadowRollout: reportedAt('$.shadow.rolloutId'),
  shadowState: reportedAt('$.shadow.state'),
  shadowReason: reportedAt('$.shadow.reason'),
};
type ReportedValues = { [K in keyof typeof reportedValues]: (typeof reportedValues)[K]['_']['type'] };

/** The parts of `reported` deviceState reads, from their values (null: the device never reported). */
function reportedParts(v: ReportedValues | undefined): DeviceReport | null {
  if (!v?.reported) return null;
  return {
    state: v.state ?? undefined,
    active: v.activeBundle === null ? null : { bundleId: v.activeBundle },
    desired: v.desiredBundle === null ? null : { bundleId: v.desiredBundle },
    lastError: v.errorCode === null ? null : { code: v.errorCode },
    shadow: v.shadowRollout === null && v.shadowState === null ? null : { rolloutId: v.shadowRollout ?? undefined, state: v.shadowState ?? undefined, reason: v.shadowReason ?? undefined },
  };
}

type DeviceReport = { state?: string; active?: { bundleId?: string } | null; desired?: { bundleId?: string } | null; lastError?: { code?: string } | null; shadow?: { rolloutId?: string; state?: string; reason?: string } | null };

/** One rollout with each cohort device's place (stage it joins in), its state in the rollout, desired and active bundle. */
export async function showRollout(db: Db, id: string): Promise<RolloutView & { devices: RolloutDevice[] }> {
  const row = await getRolloutRow(db, id);
  const ordered = await orderedMembers(db, row.cohort).catch(() => [] as string[]);
  // Only what a device's state needs: not the signed manifests, not the reported transitions (seconds at 10,000 devices).
  const desiredRows = ordered.length
    ? await db.select({ deviceId: deviceDesired.deviceId, bundleId: deviceDesired.bundleId, deploymentId: deviceDesired.deploymentId, shadow: deviceDesired.shadow }).from(deviceDesired).where(inIds(deviceDesired.deviceId, ordered))
    : [];
  const deviceRows = ordered.length ? await db.select({ id: devices.id, ...reportedValues, updateState: devices.updateState }).from(devices).where(inIds(devices.id, ordered)) : [];
  // Looked up by id: a stage of 10,000 devices must not scan both lists once per device.
  const deviceById = new Map(deviceRows.map((d) => [d.id, d]));
  const desiredById = new Map(desiredRows.map((d) => [d.deviceId, d]));
  const stageOf = (i: number) => row.stages.findIndex((f) => i < stageSize(ordered.length, f));
  const assigned = assignedBundle(row);
  return {
    ...(await toView(db, row)),
    devices: ordered.map((id, i) => {
      const d = deviceById.get(id);
      const want = desiredById.get(id);
      const rep = reportedParts(d);
      const active = rep?.active?.bundleId ?? null;
      const stage = stageOf(i);
      const { state, reason } = deviceState(row, { id, stage, want, rep, assigned });
      return { id, stage, state, reason, desiredBundle: want?.bundleId ?? null, activeBundle: active, updateState: d?.updateState ?? null };
    }),
  };
}

function deviceState(
  row: RolloutRow,
  d: { id: string; stage: number; want?: { bundleId: string; deploymentId: string | null; shadow: { rolloutId: string } | null }; rep: DeviceReport | null; assigned: string },
): { state: RolloutDeviceState; reason: string | null } {
  const outcome = row.outcomes?.[d.id] ?? null;
  if (outcome) return { state: outcome.state, reason: outcome.reason };
  const { rep, want } = d;
  if (row.phase === 'shadow') {
    if (d.stage !== 0 || want?.shadow?.rolloutId !== row.id) return { state: 'pending', reason: null };
    if (rep?.shadow?.rolloutId === row.id) return rep.shadow.state === 'failed' ? { state: 'failed', reason: rep.shadow.reason ?? 'candidate not loaded' } : rep.shadow.state === 'shadowing' ? { state: 'shadowing', reason: null } : { state: 'downloading', reason: 'loading the candidate' };
    return { state: 'notified', reason: null };
  }
  if (!want || want.deploymentId !== row.id || want.bundleId !== d.assigned) {
    // Given the bundle by this rollout once, now back on another: the rollout rolled it back.
    if (want && row.previousBundleId === want.bundleId && row.status === 'aborted' && d.stage <= row.stage) return { state: 'rolled_back', reason: 'rolled back by the rollout' };
    return { state: 'pending', reason: null };
  }
  if (rep?.active?.bundleId === d.assigned && rep.state === 'active') return { state: 'active', reason: null };
  if ((rep?.state === 'failed' || rep?.state === 'rolled_back') && rep.desired?.bundleId === d.assigned) return { state: rep.state === 'failed' ? 'failed' : 'rolled_back', reason: rep.lastError?.code ?? rep.state };
  if (rep?.desired?.bundleId === d.assigned && (rep.state === 'downloading' || rep.state === 'verifying' || rep.state === 'staging' || rep.state === 'activating' || rep.state === 'probation')) {
    return { state: rep.state === 'downloading' ? 'downloading' : 'verifying', reason: rep.state };
  }
  return { state: 'notified', reason: null };
}

export async function listRollouts(db: Db, filter: { status?: RolloutStatus; cohort?: string; limit: number; offset?: number }): Promise<RolloutView[]> {
  const where = [];
  if (filter.status) where.push(eq(rollouts.status, filter.status));
  if (filter.cohort) where.push(eq(rollouts.cohort, filter.cohort));
  const rows = await db.select().from(rollouts).where(where.length ? and(...where) : undefined).orderBy(desc(rollouts.createdAt), desc(rollouts.id)).limit(filter.limit)
    .offset(filter.offset ?? 0);
  return Promise.all(rows.map((r) => toView(db, r)));
}

/**
 * Puts the devices this rollout gave its (assigned) bundle back on the bundle the cohort ran before (inside the
 * caller's transaction); returns the devices to publish. Without a previous bundle nothing changes.
 */
export async function rollBack(tx: Tx, desired: DesiredState, row: RolloutRow): Promise<string[]> {
  if (!row.previousBundleId) return [];
  const mine = (await tx.select({ id: deviceDesired.deviceId }).from(deviceDesired).where(and(eq(deviceDesired.deploymentId, row.id), eq(deviceDesired.bundleId, assignedBundle(row))))).map((r) => r.id);
  await desired.assign(tx, row.previousBundleId, mine, { cohort: row.cohort });
  return mine;
}

/** Operator actions: pause (stop advancing), resume, abort (optionally rolling the devices back). */
export async function changeRollout(db: Db, desired: DesiredState, id: string, action: 'pause' | 'resume' | 'abort', opts: { rollback?: boolean; actor: string }): Promise<RolloutView> {
  const from: Record<typeof action, RolloutStatus[]> = { pause: ['running'], resume: ['paused'], abort: ['running', 'paused'] };
  const to: Record<typeof action, RolloutStatus> = { pause: 'paused', resume: 'running', abort: 'aborted' };
  const touched = await db.transaction(async (tx) => {
    const row = await getRolloutRow(tx, id);
    if (!from[action].includes(row.status)) throw Conflict(`rollout ${id} is ${row.status}; cannot ${action} it`);
    if (action === 'abort' && opts.rollback && !row.previousBundleId && row.phase !== 'shadow') throw Conflict(`rollout ${id} has no previous bundle to roll back to`);
    const now = new Date().toISOString();
    // Resuming restarts the stage's bake time: the pause may have hidden problems.
    // A pause by hand says so in the verdict (a gate's pause writes `gate failed: …` there), so
    // `flotilla status` and `rollouts show` tell why a rollout is paused.
    const set =
      action === 'resume'
        ? { status: to[action], updatedAt: now, stageStartedAt: now }
        : action === 'pause'
          ? { status: to[action], updatedAt: now, lastCheck: { ...(row.lastCheck ?? {}), verdict: `paused by ${opts.actor}` } }
          : { status: to[action], updatedAt: now };
    const done = await tx.update(rollouts).set(set).where(and(eq(rollouts.id, id), inArray(rollouts.status, from[action]))).returning({ id: rollouts.id });
    if (!done.length) throw Conflict(`rollout ${id} changed meanwhile; try again`);
    // Aborting in the shadow phase ends the shadow (nothing was switched, so nothing to roll back).
    const rolled = action !== 'abort' ? [] : row.phase === 'shadow' ? await endShadow(tx, desired, row) : opts.rollback ? await rollBack(tx, desired, row) : [];
    await recordAudit(tx, opts.actor, `rollout.${action}`, id, action === 'abort' ? { rollback: Boolean(opts.rollback), devices: rolled.length } : undefined);
    const type = ({ pause: 'rollout.paused', resume: 'rollout.resumed', abort: 'rollout.aborted' } as const)[action];
    await recordEvent(tx, type, id, { rolloutId: id, cohort: row.cohort, stage: row.stage, ...(action === 'abort' ? { rollback: Boolean(opts.rollback) } : {}) });
    if (rolled.length) await recordEvent(tx, 'rollout.rolled_back', id, { rolloutId: id, cohort: row.cohort, devices: rolled.length, to: row.previousBundleId });
    return rolled;
  });
  if (touched.length) await desired.publish(touched);
  return getRollout(db, id);
}

/** Devices of a stage that can shadow: those with a bundle to keep serving (desired state) — the candidate runs beside it. */
export async function shadowTargets(tx: Tx, ids: string[]): Promise<string[]> {
  if (!ids.length) return [];
  const have = new Set((await tx.select({ id: deviceDesired.deviceId }).from(deviceDesired).where(inArray(deviceDesired.deviceId, ids))).map((r) => r.id));
  return ids.filter((id) => have.has(id));
}

/**
 * Signs the rollout's candidate into the manifests of `ids` beside the bundle each keeps serving (a
 * re-signed manifest: next counter, same bundle); devices already carrying it are left alone. Returns
 * the devices to publish.
 */
export async function startShadow(tx: Tx, desired: DesiredState, row: Pick<RolloutRow, 'id' | 'bundleId' | 'assignedBundleId' | 'cohort' | 'shadow'>, ids: string[]): Promise<string[]> {
  if (!ids.length || !row.shadow) return [];
  const rows = await tx.select().from(deviceDesired).where(inArray(deviceDesired.deviceId, ids));
  const spec = { rolloutId: row.id, bundleId: assignedBundle(row), share: row.shadow.share, windowS: row.shadow.windowS };
  const todo = rows.filter((r) => r.shadow?.rolloutId !== row.id || r.shadow.bundleId !== spec.bundleId || r.shadow.share !== spec.share);
  for (const group of sameAssignment(todo)) {
    const r = group[0];
    await desired.assign(tx, r.bundleId, group.map((g) => g.deviceId), { deploymentId: r.deploymentId ?? undefined, cohort: r.cohort ?? row.cohort, shadow: spec });
  }
  return todo.map((r) => r.deviceId);
}

/** Ends the rollout's shadow: its devices' manifests are re-signed without the candidate. Returns them. */
export async function endShadow(tx: Tx, desired: DesiredState, row: Pick<RolloutRow, 'id'>): Promise<string[]> {
  const rows = (await tx.select().from(deviceDesired).where(isNotNull(deviceDesired.shadow))).filter((r) => r.shadow?.rolloutId === row.id);
  for (const group of sameAssignment(rows)) {
    const r = group[0];
    await desired.assign(tx, r.bundleId, group.map((g) => g.deviceId), { deploymentId: r.deploymentId ?? undefined, cohort: r.cohort ?? undefined, shadow: null });
  }
  return rows.map((r) => r.deviceId);
}

function checkShadow(s: { share: number; durationS?: number; windowS?: number }): { share: number; durationS: number; windowS: number } {
  if (!(typeof s.share === 'number' && s.share > 0 && s.share <= 1)) throw Invalid(`shadow share ${s.share} is outside (0, 1]: give a share of requests above 0 % and at most 100 %`, { field: 'shadow.share' });
  const durationS = s.durationS ?? SHADOW_DEFAULTS.durationS;
  const windowS = s.windowS ?? Math.min(SHADOW_DEFAULTS.windowS, Math.max(1, Math.floor(durationS / 2) || 1));
  if (!Number.isInteger(durationS) || durationS < 1) throw Invalid('shadow durationS must be a whole number of seconds ≥ 1', { field: 'shadow.durationS' });
  if (!Number.isInteger(windowS) || windowS < 1 || windowS > 3600) throw Invalid('shadow windowS must be a whole number of seconds in [1, 3600]', { field: 'shadow.windowS' });
  return { share: s.share, durationS, windowS };
}

/** Shadow needs agents that say they can shadow (reported capabilities) and a bundle to compare against. */
async function checkShadowable(tx: Tx, ids: string[]): Promise<void> {
  const rows = ids.length ? await tx.select({ id: devices.id, reported: devices.reported }).from(devices).where(inArray(devices.id, ids)) : [];
  const old = rows.filter((r) => !((r.reported as { capabilities?: string[] } | null)?.capabilities ?? []).includes('shadow'));
  if (old.length) {
    const list = old.slice(0, 10).map((r) => `${r.id} (agent ${(r.reported as { agentVersion?: string } | null)?.agentVersion ?? 'never reported'})`);
    throw Invalid(`${old.length} device(s) of the first stage run an agent without shadow evaluation: ${list.join(', ')}${old.length > 10 ? ', …' : ''}`, {
      hint: 'upgrade those agents (shadow needs the `shadow` capability in reported state), or start the rollout without --shadow',
      devices: old.map((r) => r.id),
    });
  }
  if (!(await shadowTargets(tx, ids)).length) throw Invalid('no device of the first stage runs a bundle yet: a shadow needs an active model to compare with', { hint: 'deploy a first version, or start the rollout without --shadow' });
}
