// Per-model drift settings: protocol/'s DriftConfig, stored as given and parsed with every default filled in.
import { eq, inArray } from 'drizzle-orm';
import { DriftConfig, DriftConfigError, evaluateDrift, type DriftConfigInput } from '../../protocol/drift/index.ts';
import { recordAudit } from '../audit/audit-log.ts';
import type { Db, Tx } from '../db/client.ts';
import { driftConfigs, models, modelVersions, referenceProfiles } from '../db/schema.ts';
import { Invalid, NotFound } from '../errors.ts';

export interface DriftConfigView {
  model: string;
  /** false: nothing stored, the defaults apply. */
  custom: boolean;
  config: DriftConfig;
  updatedAt: string | null;
  updatedBy: string | null;
}

async function modelByName(tx: Tx, name: string) {
  const model = await tx.query.models.findFirst({ where: eq(models.name, name) });
  if (!model) throw NotFound(`model "${name}"`);
  return model;
}

/** The effective settings of a model (defaults when none are stored). */
export async function driftConfigOf(tx: Tx, modelId: number): Promise<DriftConfig> {
  const row = await tx.query.driftConfigs.findFirst({ where: eq(driftConfigs.modelId, modelId) });
  // Stored configs were valid when written; parsing again fills defaults added since.
  return DriftConfig.parse(row?.config ?? {});
}

export async function getDriftConfig(db: Db, name: string): Promise<DriftConfigView> {
  const model = await modelByName(db, name);
  const row = await db.query.driftConfigs.findFirst({ where: eq(driftConfigs.modelId, model.id) });
  return { model: name, custom: Boolean(row), config: DriftConfig.parse(row?.config ?? {}), updatedAt: row?.updatedAt ?? null, updatedBy: row?.updatedBy ?? null };
}

/**
 * Validates and stores a model's settings. Per-feature methods are checked against every reference
 * profile of the model (KS on a categorical feature is refused here, not at the next evaluation).
 */
export async function setDriftConfig(db: Db, name: string, input: unknown, actor: string): Promise<DriftConfigView> {
  const parsed = DriftConfig.safeParse(input);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
    throw Invalid(`invalid drift config: ${issues[0].path ? issues[0].path + ': ' : ''}${issues[0].message}`, { issues });
  }
  return db.transaction(async (tx) => {
    const model = await modelByName(tx, name);
    const versionIds = (await tx.select({ id: modelVersions.id }).from(modelVersions).where(eq(modelVersions.modelId, model.id))).map((v) => v.id);
    const refs = versionIds.length ? await tx.select({ sketch: referenceProfiles.sketch }).from(referenceProfiles).where(inArray(referenceProfiles.modelVersionId, versionIds)) : [];
    for (const r of refs) {
      try {
        evaluateDrift(r.sketch, r.sketch, parsed.data);
      } catch (err) {
        if (err instanceof DriftConfigError) throw Invalid(`invalid drift config: ${err.message}`);
        throw err;
      }
    }
    const row = { config: input as DriftConfigInput, updatedAt: new Date().toISOString(), updatedBy: actor };
    await tx.insert(driftConfigs).values({ modelId: model.id, ...row }).onConflictDoUpdate({ target: driftConfigs.modelId, set: row });
    await recordAudit(tx, actor, 'model.drift-config.set', name, input);
    return { model: name, custom: true, config: parsed.data, updatedAt: row.updatedAt, updatedBy: actor };
  });
}
