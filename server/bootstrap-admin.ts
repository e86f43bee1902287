// First start: create an admin API token, store it in the data dir (0600) and print it once.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import { recordAudit } from './audit/audit-log.ts';
import { createApiToken } from './auth/api-tokens.ts';
import type { Db } from './db/client.ts';
import { apiTokens } from './db/schema.ts';

export const ADMIN_TOKEN_FILE = 'admin-token';

/** Returns the new token when one was created (first start), or null. */
export async function bootstrapAdminToken(db: Db, dataDir: string): Promise<string | null> {
  const existing = await db.select({ id: apiTokens.id }).from(apiTokens).where(eq(apiTokens.role, 'admin')).limit(1);
  if (existing.length) return null;
  const { token } = await db.transaction(async (tx) => {
    const t = await createApiToken(tx, { name: 'bootstrap-admin', role: 'admin', createdBy: 'system' });
    await recordAudit(tx, 'system', 'token.create', t.id, { name: 'bootstrap-admin', role: 'admin' });
    return t;
  });
  await writeFile(path.join(dataDir, ADMIN_TOKEN_FILE), token + '\n', { mode: 0o600 });
  return token;
}
