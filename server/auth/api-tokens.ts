// API tokens: created by an admin (or at first start), presented as `Authorization: Bearer <token>`.
import { and, eq, isNull } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.ts';
import { apiTokens } from '../db/schema.ts';
import { NotFound } from '../errors.ts';
import type { Role } from './roles.ts';
import { randomId, randomSecret, sha256Hex } from './secrets.ts';

export interface Principal {
  tokenId: string;
  name: string;
  role: Role;
}

export async function createApiToken(
  tx: Tx,
  input: { name: string; role: Role; expiresAt?: string | null; createdBy?: string | null },
): Promise<{ id: string; token: string }> {
  const id = randomId('tok');
  const token = randomSecret('flt');
  await tx.insert(apiTokens).values({
    id,
    name: input.name,
    role: input.role,
    tokenHash: sha256Hex(token),
    expiresAt: input.expiresAt ?? null,
    createdBy: input.createdBy ?? null,
  });
  return { id, token };
}

export type TokenCheck = { ok: true; principal: Principal } | { ok: false; reason: 'unknown' | 'expired' | 'revoked' };

export async function authenticateApiToken(db: Db, token: string, now = new Date()): Promise<TokenCheck> {
  const row = await db.query.apiTokens.findFirst({ where: eq(apiTokens.tokenHash, sha256Hex(token)) });
  if (!row) return { ok: false, reason: 'unknown' };
  if (row.revokedAt) return { ok: false, reason: 'revoked' };
  if (row.expiresAt && new Date(row.expiresAt) <= now) return { ok: false, reason: 'expired' };
  return { ok: true, principal: { tokenId: row.id, name: row.name, role: row.role } };
}

export async function listApiTokens(db: Db) {
  const rows = await db.select().from(apiTokens).orderBy(apiTokens.createdAt);
  return rows.map(({ tokenHash: _hash, ...rest }) => rest);
}

export async function revokeApiToken(tx: Tx, id: string): Promise<void> {
  const res = await tx
    .update(apiTokens)
    .set({ revokedAt: new Date().toISOString() })
    .where(and(eq(apiTokens.id, id), isNull(apiTokens.revokedAt)))
    .returning({ id: apiTokens.id });
  if (res.length === 0) throw NotFound(`active token ${id}`);
}
