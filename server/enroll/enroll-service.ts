// Enrollment: operators mint enrollment tokens; a device trades one (plus its hardware facts) for an
// identity and MQTT credentials. The token is spent atomically, so max-uses holds under concurrency.
import { and, eq, isNull, or, lt, sql } from 'drizzle-orm';
import { recordAudit } from '../audit/audit-log.ts';
import { recordEvent } from '../events/event-log.ts';
import { hashDeviceSecret, verifyDeviceSecret } from '../auth/device-credentials.ts';
import { randomId, randomSecret, sha256Hex } from '../auth/secrets.ts';
import type { Db, Tx } from '../db/client.ts';
import { devices, enrollTokens } from '../db/schema.ts';
import type { DeviceBrokerAccess } from '../broker/device-broker-access.ts';
import { Conflict, NotFound, ServiceError } from '../errors.ts';
import { identityFromNonce } from './enroll-nonce.ts';

export interface DeviceFacts {
  arch: string;
  cpus: number;
  memoryBytes: number;
  os: string;
  agentVersion: string;
  hostname?: string;
}

export async function createEnrollToken(
  tx: Tx,
  input: { labels: Record<string, string>; ttlSeconds?: number; maxUses?: number; autoApprove: boolean; actor: string },
) {
  const id = randomId('enr');
  const token = randomSecret('fle');
  const expiresAt = input.ttlSeconds ? new Date(Date.now() + input.ttlSeconds * 1000).toISOString() : null;
  await tx.insert(enrollTokens).values({
    id,
    tokenHash: sha256Hex(token),
    labels: input.labels,
    autoApprove: input.autoApprove,
    expiresAt,
    maxUses: input.maxUses ?? null,
    createdBy: input.actor,
  });
  await recordAudit(tx, input.actor, 'enroll-token.create', id, { labels: input.labels, expiresAt, maxUses: input.maxUses, autoApprove: input.autoApprove });
  return { id, token, expiresAt, maxUses: input.maxUses ?? null, labels: input.labels, autoApprove: input.autoApprove };
}

export async function listEnrollTokens(db: Db) {
  const rows = await db.select().from(enrollTokens).orderBy(enrollTokens.createdAt);
  return rows.map(({ tokenHash: _h, ...r }) => r);
}

export async function revokeEnrollToken(db: Db, id: string, actor: string): Promise<void> {
  await db.transaction(async (tx) => {
    const res = await tx
      .update(enrollTokens)
      .set({ revokedAt: new Date().toISOString() })
      .where(and(eq(enrollTokens.id, id), isNull(enrollTokens.revokedAt)))
      .returning({ id: enrollTokens.id });
    if (!res.length) throw NotFound(`active enrollment token ${id}`);
    await recordAudit(tx, actor, 'enroll-token.revoke', id);
  });
}

export interface EnrollResult {
  deviceId: string;
  secret: string;
  status: 'pending' | 'approved';
  labels: Record<string, string>;
  /** The answer to an earlier attempt of the same enrollment (same nonce), given again: no token use spent. */
  repeated?: boolean;
}

/**
 * The enrollment this nonce already made, answered again (enroll-nonce.ts); undefined when there is none.
 * A revoked device stays revoked: its agent must start a new enrollment (a new nonce).
 */
async function repeatedEnrollment(tx: Tx, deviceId: string, secret: string): Promise<EnrollResult | undefined> {
  const row = await tx.query.devices.findFirst({ columns: { status: true, labels: true, credentialHash: true }, where: eq(devices.id, deviceId) });
  if (!row) return undefined;
  // The id is a hash of the nonce, the secret needs the nonce: a mismatch is not this enrollment.
  if (!(await verifyDeviceSecret(secret, row.credentialHash)).ok) throw Conflict('this enrollment nonce belongs to another device: start a new enrollment');
  if (row.status === 'revoked') throw refused('this device was revoked; enroll again with a new nonce');
  return { deviceId, secret, status: row.status, labels: row.labels, repeated: true };
}

/** Why a token cannot enroll a device now (null: it can). */
function refusal(row: typeof enrollTokens.$inferSelect | undefined, now: string): string | null {
  if (!row) return 'enrollment token not recognised';
  if (row.revokedAt) return 'enrollment token revoked';
  if (row.maxUses != null && row.uses >= row.maxUses) return 'enrollment token has no uses left';
  if (row.expiresAt != null && row.expiresAt <= now) return 'enrollment token expired';
  return null;
}

function refused(why: string): ServiceError {
  return new ServiceError('unauthorized', `${why}: ask an operator for a new one (\`flotilla enroll-tokens create\`)`);
}

/** What the broker learns around an enrollment (DeviceBrokerAccess). */
export type EnrollBrokerStep = Pick<DeviceBrokerAccess, 'enrolled' | 'enrollEnded'>;

/**
 * Enrolls a device. The broker learns its credentials BEFORE the database transaction, never inside
 * it: a slow broker (Mosquitto's dynamic security answers in 0.1–1 s at thousands of clients) must
 * not hold the database's single write lock. Either order leaves something when it fails halfway;
 * this one leaves only a broker client no device row backs (the row is written last):
 * - the token is checked first, so a refused token costs the broker nothing;
 * - the broker refuses or is away: nothing is written, 503, the agent retries;
 * - the transaction fails (e.g. a concurrent enrollment took the token's last use): the client is
 *   deleted again (enrollEnded(false)); if that fails too, or the server dies in between, the broker
 *   reconcile deletes clients of unknown devices.
 * The other order (row first, then the broker) would leave a device row whose login the broker does
 * not know, and the server cannot create it later: it keeps only a hash of the secret.
 */
export async function enrollDevice(db: Db, input: { token: string; facts: DeviceFacts; name?: string; nonce?: string }, broker?: EnrollBrokerStep): Promise<EnrollResult> {
  const { deviceId, secret } = input.nonce ? identityFromNonce(input.nonce) : { deviceId: randomId('dev', 10), secret: randomSecret('fld') };
  // A retry of an enrollment that committed: the same answer, nothing spent, the broker already knows it.
  if (input.nonce) {
    const again = await repeatedEnrollment(db, deviceId, secret);
    if (again) return again;
  }
  const credentialHash = hashDeviceSecret(secret);
  const tokenHash = sha256Hex(input.token);
  const checked = await db.query.enrollTokens.findFirst({ where: eq(enrollTokens.tokenHash, tokenHash) });
  const why = refusal(checked, new Date().toISOString());
  if (why) throw refused(why);
  const status = checked!.autoApprove ? 'approved' : 'pending'; // autoApprove never changes
  await broker?.enrolled(deviceId, secret, status === 'approved');
  let committed = false;
  try {
    const res = await db.transaction(async (tx) => {
      const now = new Date().toISOString();
      // Two attempts of one enrollment at once (a retry while the first was still being written): the
      // write lock orders them, and the second answers what the first wrote.
      if (input.nonce) {
        const again = await repeatedEnrollment(tx, deviceId, secret);
        if (again) return again;
      }
      // Spent atomically: max-uses holds under concurrency (the check above was only a read).
      const [tok] = await tx
        .update(enrollTokens)
        .set({ uses: sql`${enrollTokens.uses} + 1` })
        .where(
          and(
            eq(enrollTokens.tokenHash, tokenHash),
            isNull(enrollTokens.revokedAt),
            or(isNull(enrollTokens.expiresAt), sql`${enrollTokens.expiresAt} > ${now}`),
            or(isNull(enrollTokens.maxUses), lt(enrollTokens.uses, enrollTokens.maxUses)),
          ),
        )
        .returning();
      if (!tok) throw refused(refusal(await tx.query.enrollTokens.findFirst({ where: eq(enrollTokens.tokenHash, tokenHash) }), now) ?? 'enrollment token expired');
      await tx.insert(devices).values({
        id: deviceId,
        name: input.name ?? input.facts.hostname ?? null,
        status,
        labels: tok.labels,
        facts: { ...input.facts },
        credentialHash,
        enrollTokenId: tok.id,
        approvedAt: status === 'approved' ? now : null,
      });
      await recordAudit(tx, `device ${deviceId}`, 'device.enroll', deviceId, { enrollToken: tok.id, status, facts: input.facts });
      await recordEvent(tx, 'device.enrolled', deviceId, { status, labels: tok.labels });
      return { deviceId, secret, status, labels: tok.labels } as EnrollResult;
    });
    committed = true;
    return res;
  } finally {
    await broker?.enrollEnded(deviceId, committed);
  }
}
