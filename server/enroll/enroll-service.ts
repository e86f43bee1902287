// Enrollment: operators mint enrollment tokens; a device trades one (plus its hardware facts) for an
// identity and MQTT credentials. The token is spent atomically, so max-uses holds under concurrency.
import { and, eq, isNull, or, lt, sql } from 'drizzle-orm';
import { recordAudit } from '../audit/audit-log.ts';
import { recordEvent } from '../events/event-log.ts';
import { hashDeviceSecret } from '../auth/device-credentials.ts';
import { randomId, randomSecret, sha256Hex } from '../auth/secrets.ts';
import type { Db, Tx } from '../db/client.ts';
import { devices, enrollTokens } from '../db/schema.ts';
import { NotFound, ServiceError } from '../errors.ts';

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
}

export async function enrollDevice(
  db: Db,
  input: { token: string; facts: DeviceFacts; name?: string },
  /** Runs last inside the transaction (the broker learns the credentials); a throw rolls the enrollment back. */
  beforeCommit?: (deviceId: string, secret: string, approved: boolean) => Promise<void>,
): Promise<EnrollResult> {
  const deviceId = randomId('dev', 10);
  const secret = randomSecret('fld');
  const credentialHash = hashDeviceSecret(secret);
  return db.transaction(async (tx) => {
    const now = new Date().toISOString();
    const [tok] = await tx
      .update(enrollTokens)
      .set({ uses: sql`${enrollTokens.uses} + 1` })
      .where(
        and(
          eq(enrollTokens.tokenHash, sha256Hex(input.token)),
          isNull(enrollTokens.revokedAt),
          or(isNull(enrollTokens.expiresAt), sql`${enrollTokens.expiresAt} > ${now}`),
          or(isNull(enrollTokens.maxUses), lt(enrollTokens.uses, enrollTokens.maxUses)),
        ),
      )
      .returning();
    if (!tok) {
      const row = await tx.query.enrollTokens.findFirst({ where: eq(enrollTokens.tokenHash, sha256Hex(input.token)) });
      const why = !row
        ? 'enrollment token not recognised'
        : row.revokedAt
          ? 'enrollment token revoked'
          : row.maxUses != null && row.uses >= row.maxUses
            ? 'enrollment token has no uses left'
            : 'enrollment token expired';
      throw new ServiceError('unauthorized', `${why}: ask an operator for a new one (\`flotilla enroll-tokens create\`)`);
    }
    const status = tok.autoApprove ? 'approved' : 'pending';
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
    await beforeCommit?.(deviceId, secret, status === 'approved');
    return { deviceId, secret, status, labels: tok.labels };
  });
}
