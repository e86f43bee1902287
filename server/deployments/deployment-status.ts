// A deployment's own status: where each of its devices stands with the bundle it was given (a cohort
// preferring a variant gives some devices the variant's bundle, so "its bundle" is per device).
// A device belongs to the deployment while its desired state comes from it: late joiners of a cohort
// deployment count, devices moved on to a newer deployment or rollout no longer do: those that served the
// deployment's bundle before they moved on are listed apart as superseded, from the serving history, so a
// deployment keeps its outcome after newer ones replaced it.
import { and, desc, eq, inArray, notInArray } from 'drizzle-orm';
import { UPDATE_STATES, type ReportedMessage } from '../../protocol/messages/reported.ts';
import type { Db } from '../db/client.ts';
import { deployments, deviceDesired, devices, servingHistory } from '../db/schema.ts';
import { NotFound } from '../errors.ts';

export const DEPLOYMENT_DEVICE_STATES = ['pending', ...UPDATE_STATES.filter((s) => s !== 'idle')] as const;
export type DeploymentDeviceState = (typeof DEPLOYMENT_DEVICE_STATES)[number];

export interface DeploymentDeviceStatus {
  deviceId: string;
  name: string | null;
  online: boolean;
  /** The bundle this device was given (the deployment's, or its cohort's preferred variant's). */
  bundleId: string;
  /** The bundle the device reports running now (null: none), with its model version. */
  activeBundleId: string | null;
  activeModel: string | null;
  state: DeploymentDeviceState;
  error?: { code: string; message: string };
  updatedAt: string;
}

export interface DeploymentStatus {
  deploymentId: string;
  bundleId: string;
  target: { kind: 'device' | 'cohort'; name: string };
  createdAt: string;
  counts: Record<DeploymentDeviceState, number>;
  devices: DeploymentDeviceStatus[];
  /** Devices that served this deployment's bundle and have since been given another deployment or rollout. */
  superseded: SupersededDevice[];
}

export interface SupersededDevice {
  deviceId: string;
  name: string | null;
  bundleId: string;
  model: string;
  /** When it served this deployment's bundle. */
  from: string;
  to: string | null;
  /** The deployment or rollout its desired state comes from now. */
  supersededBy: string | null;
}

/**
 * Where a device stands on the manifest it was given (bundle + counter): `pending` until the agent
 * reports working on it, then its reported state; a device that already runs the bundle is active.
 */
export function deviceState(given: { bundleId: string; counter: number }, reported: ReportedMessage | null): { state: DeploymentDeviceState; error?: { code: string; message: string }; at?: string } {
  if (!reported) return { state: 'pending' };
  const working = reported.desired && reported.desired.bundleId === given.bundleId && reported.desired.counter >= given.counter;
  if (working && reported.state !== 'idle') {
    const failed = reported.state === 'failed' || reported.state === 'rolled_back';
    return { state: reported.state, at: reported.at, ...(failed && reported.lastError ? { error: { code: reported.lastError.code, message: reported.lastError.message } } : {}) };
  }
  if (reported.active?.bundleId === given.bundleId && (reported.state === 'active' || reported.state === 'idle')) return { state: 'active', at: reported.at };
  return { state: 'pending' };
}

/** `superseded: false` leaves the superseded list empty without reading it (a view of the current devices only). */
export async function deploymentStatus(db: Db, id: string, opts: { superseded?: boolean } = {}): Promise<DeploymentStatus> {
  const dep = await db.query.deployments.findFirst({ where: eq(deployments.id, id) });
  if (!dep) throw NotFound(`deployment "${id}"`, { hint: 'list deployments with `flotilla deployments`' });
  // A rollout's devices carry the rollout's id; the deployment it records on success is dep_<same>.
  const ids = dep.id.startsWith('dep_') ? [dep.id, dep.id.replace(/^dep_/, 'rol_')] : [dep.id];
  const rows = await db
    .select({ desired: deviceDesired, name: devices.name, online: devices.online, reported: devices.reported })
    .from(deviceDesired)
    .innerJoin(devices, eq(devices.id, deviceDesired.deviceId))
    .where(inArray(deviceDesired.deploymentId, ids))
    .orderBy(deviceDesired.deviceId);
  const counts = Object.fromEntries(DEPLOYMENT_DEVICE_STATES.map((s) => [s, 0])) as DeploymentStatus['counts'];
  const list = rows.map((r): DeploymentDeviceStatus => {
    const reported = r.reported as ReportedMessage | null;
    const s = deviceState(r.desired, reported);
    counts[s.state]++;
    const active = reported?.active ?? null;
    return {
      deviceId: r.desired.deviceId,
      name: r.name,
      online: r.online,
      bundleId: r.desired.bundleId,
      activeBundleId: active?.bundleId ?? null,
      activeModel: active ? `${active.model.name}@${active.model.version}` : null,
      state: s.state,
      ...(s.error ? { error: s.error } : {}),
      updatedAt: s.at ?? r.desired.updatedAt,
    };
  });
  const superseded = opts.superseded === false ? [] : await supersededDevices(db, ids);
  return { deploymentId: dep.id, bundleId: dep.bundleId, target: { kind: dep.targetKind, name: dep.target }, createdAt: dep.createdAt, counts, devices: list, superseded };
}

/** Devices with a serving interval through one of `deploymentIds` whose desired state no longer comes from it (newest interval each). */
async function supersededDevices(db: Db, deploymentIds: string[]): Promise<SupersededDevice[]> {
  const current = db.select({ id: deviceDesired.deviceId }).from(deviceDesired).where(inArray(deviceDesired.deploymentId, deploymentIds));
  const rows = await db
    .select({ h: servingHistory, name: devices.name, now: deviceDesired.deploymentId })
    .from(servingHistory)
    .leftJoin(devices, eq(devices.id, servingHistory.deviceId))
    .leftJoin(deviceDesired, eq(deviceDesired.deviceId, servingHistory.deviceId))
    .where(and(inArray(servingHistory.deploymentId, deploymentIds), notInArray(servingHistory.deviceId, current)))
    .orderBy(servingHistory.deviceId, desc(servingHistory.id));
  const seen = new Set<string>();
  const out: SupersededDevice[] = [];
  for (const { h, name, now } of rows) {
    if (seen.has(h.deviceId)) continue;
    seen.add(h.deviceId);
    out.push({ deviceId: h.deviceId, name, bundleId: h.bundleId, model: `${h.model}@${h.version}`, from: h.startedAt, to: h.endedAt, supersededBy: now ?? null });
  }
  return out;
}
