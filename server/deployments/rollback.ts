// Rollback of one device: a new signed manifest for the bundle it was given before, with the next
// counter, so it travels the normal update path (verified, staged, smoke-tested, probation) like any
// deployment. It is recorded as a device deployment and audited with who asked. Nothing unsigned
// changes what a device runs (see protocol/messages/command.ts).
import { eq } from 'drizzle-orm';
import { recordAudit } from '../audit/audit-log.ts';
import { randomId } from '../auth/secrets.ts';
import type { Db } from '../db/client.ts';
import { deployments, deviceDesired } from '../db/schema.ts';
import { getDevice } from '../devices/device-service.ts';
import { Conflict } from '../errors.ts';
import type { DesiredState } from './desired-state.ts';

export interface RollbackResult {
  deploymentId: string;
  deviceId: string;
  from: string;
  to: string;
  counter: number;
}

export async function rollbackDevice(db: Db, desired: DesiredState, deviceId: string, actor: string, reason?: string): Promise<RollbackResult> {
  const result = await db.transaction(async (tx) => {
    const device = await getDevice(tx, deviceId);
    if (device.status !== 'approved') throw Conflict(`device ${deviceId} is ${device.status}; only approved devices receive deployments`);
    const row = await tx.query.deviceDesired.findFirst({ where: eq(deviceDesired.deviceId, deviceId) });
    if (!row) throw Conflict(`device ${deviceId} has no desired state to roll back`);
    if (!row.previousBundleId) throw Conflict(`device ${deviceId} has no previous bundle to roll back to`, { hint: 'deploy the bundle you want with `flotilla deploy <bundle> --device <id>`' });
    const id = randomId('dep', 8);
    await desired.assign(tx, row.previousBundleId, [deviceId], { deploymentId: id });
    const now = await tx.query.deviceDesired.findFirst({ where: eq(deviceDesired.deviceId, deviceId) });
    await tx.insert(deployments).values({ id, bundleId: row.previousBundleId, targetKind: 'device', target: deviceId, deviceCount: 1, createdBy: actor, kind: 'rollback' });
    const r: RollbackResult = { deploymentId: id, deviceId, from: row.bundleId, to: row.previousBundleId, counter: now!.counter };
    await recordAudit(tx, actor, 'device.rollback', deviceId, { from: r.from, to: r.to, counter: r.counter, deployment: id, ...(reason ? { reason } : {}) });
    return r;
  });
  await desired.publish([deviceId]);
  return result;
}
