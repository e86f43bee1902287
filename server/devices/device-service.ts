// Devices: listing by selector, labels, approval and revocation.
import { and, eq } from 'drizzle-orm';
import { recordAudit } from '../audit/audit-log.ts';
import { hashDeviceSecret, verifyDeviceSecret } from '../auth/device-credentials.ts';
import { matches, parseSelector, SelectorError, type SelectorTerm } from '../cohorts/selector.ts';
import type { Db, Tx } from '../db/client.ts';
import { deviceDesired, devices } from '../db/schema.ts';
import { Conflict, Invalid, NotFound } from '../errors.ts';
import { recordEvent } from '../events/event-log.ts';
import { MAX_LABELS } from '../http/bounds.ts';

export type DeviceRow = typeof devices.$inferSelect;
export type DeviceView = Omit<DeviceRow, 'credentialHash'>;

export function toDeviceView({ credentialHash: _c, ...rest }: DeviceRow): DeviceView {
  return rest;
}

export function parseSelectorOrThrow(selector: string): SelectorTerm[] {
  try {
    return parseSelector(selector);
  } catch (err) {
    if (err instanceof SelectorError) throw Invalid(err.message, { position: err.position });
    throw err;
  }
}

export async function listDevices(db: Tx, filter: { selector?: string; status?: DeviceRow['status'] } = {}): Promise<DeviceView[]> {
  const terms = filter.selector ? parseSelectorOrThrow(filter.selector) : null;
  const rows = await db.select().from(devices).where(filter.status ? eq(devices.status, filter.status) : undefined).orderBy(devices.enrolledAt);
  return rows.filter((d) => !terms || matches(terms, d.labels)).map(toDeviceView);
}

export async function getDevice(db: Tx, id: string): Promise<DeviceRow> {
  const row = await db.query.devices.findFirst({ where: eq(devices.id, id) });
  if (!row) throw NotFound(`device "${id}"`, { hint: 'list devices with `flotilla devices ls`' });
  return row;
}

export async function updateLabels(db: Db, id: string, set: Record<string, string>, remove: string[], actor: string): Promise<DeviceView> {
  return db.transaction(async (tx) => {
    const row = await getDevice(tx, id);
    const labels = { ...row.labels, ...set };
    for (const k of remove) delete labels[k];
    if (Object.keys(labels).length > MAX_LABELS) throw Invalid(`a device has at most ${MAX_LABELS} labels`, { labels: Object.keys(labels).length });
    const [updated] = await tx.update(devices).set({ labels }).where(eq(devices.id, id)).returning();
    await recordAudit(tx, actor, 'device.label', id, { set, remove });
    await recordEvent(tx, 'device.labels', id, { labels });
    return toDeviceView(updated);
  });
}

export async function approveDevice(db: Db, id: string, actor: string): Promise<DeviceView> {
  return db.transaction(async (tx) => {
    const row = await getDevice(tx, id);
    if (row.status === 'revoked') throw Conflict(`device ${id} is revoked; it must enroll again`);
    if (row.status === 'approved') return toDeviceView(row);
    const [updated] = await tx.update(devices).set({ status: 'approved', approvedAt: new Date().toISOString() }).where(eq(devices.id, id)).returning();
    await recordAudit(tx, actor, 'device.approve', id);
    await recordEvent(tx, 'device.approved', id, {});
    return toDeviceView(updated);
  });
}

export async function revokeDevice(db: Db, id: string, actor: string): Promise<DeviceView> {
  return db.transaction(async (tx) => {
    const row = await getDevice(tx, id);
    if (row.status === 'revoked') return toDeviceView(row);
    const [updated] = await tx.update(devices).set({ status: 'revoked', revokedAt: new Date().toISOString(), online: false }).where(eq(devices.id, id)).returning();
    await recordAudit(tx, actor, 'device.revoke', id);
    await recordEvent(tx, 'device.revoked', id, {});
    return toDeviceView(updated);
  });
}

/** What a device's credentials are checked against. */
export interface CredentialRow {
  status: 'pending' | 'approved' | 'revoked';
  credentialHash: string;
}

/**
 * Checks a device's secret: only approved devices with the right secret pass. One indexed read of
 * the row's status and hash (through `lookup` when given: the broker batches a burst of connects,
 * see credential-lookup.ts); a hash still in the legacy (scrypt) form is replaced by the fast form
 * once the secret proved right, so each device pays scrypt at most once (no re-enrollment).
 */
export async function verifyDeviceCredentials(
  db: Db,
  id: string,
  secret: string,
  lookup?: (id: string) => Promise<CredentialRow | undefined>,
): Promise<'ok' | 'unknown' | 'bad_secret' | 'pending' | 'revoked'> {
  const row = lookup ? await lookup(id) : (await db.select({ status: devices.status, credentialHash: devices.credentialHash }).from(devices).where(eq(devices.id, id)))[0];
  if (!row) return 'unknown';
  const check = await verifyDeviceSecret(secret, row.credentialHash);
  if (!check.ok) return 'bad_secret';
  if (check.needsRehash) {
    // Conditional on the old hash: a concurrent connect of the same device migrates it only once.
    await db
      .update(devices)
      .set({ credentialHash: hashDeviceSecret(secret) })
      .where(and(eq(devices.id, id), eq(devices.credentialHash, row.credentialHash)));
  }
  if (row.status !== 'approved') return row.status;
  return 'ok';
}

/** One device with its desired state (what the server asked for) next to what it reported. */
export async function deviceDetail(db: Tx, id: string) {
  const row = await getDevice(db, id);
  const d = await db.query.deviceDesired.findFirst({ where: eq(deviceDesired.deviceId, id) });
  const desired = d ? { bundleId: d.bundleId, counter: d.counter, deploymentId: d.deploymentId, cohort: d.cohort, expiresAt: d.expiresAt, updatedAt: d.updatedAt } : null;
  return { ...toDeviceView(row), desired };
}
