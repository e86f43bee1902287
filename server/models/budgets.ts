// A model's quality and fairness budgets: every new version (evaluated against the champion) and every
// optimized variant (against its parent) is gated on them. Unset fields take the defaults.
import { eq } from 'drizzle-orm';
import { z } from 'zod';
import { recordAudit } from '../audit/audit-log.ts';
import type { Db, Tx } from '../db/client.ts';
import { models } from '../db/schema.ts';
import { NotFound } from '../errors.ts';
import { DEFAULT_BUDGETS, type Budgets } from '../optimize/analysis.ts';

const fraction = z.number().min(0).max(1);
export const BudgetsInput = z
  .object({
    /** Largest accuracy drop against the baseline, as a fraction (0.01 = one point). */
    maxAccuracyDrop: fraction,
    /** Smallest share of predictions equal to the baseline's. */
    minAgreement: fraction,
    /** Regressors: largest relative RMSE increase. */
    maxRmseIncrease: z.number().min(0),
    /** Largest accuracy gap between groups of a group column. */
    maxAccuracyGap: fraction,
    maxDemographicParityDifference: fraction,
    maxEqualOpportunityDifference: fraction,
  })
  .partial()
  .strict();
export type BudgetsInput = z.infer<typeof BudgetsInput>;

export interface BudgetsView {
  model: string;
  /** What was set on the model; the rest are defaults. */
  custom: BudgetsInput;
  effective: Budgets;
}

export function effectiveBudgets(stored: unknown): Budgets {
  const parsed = BudgetsInput.safeParse(stored ?? {});
  return { ...DEFAULT_BUDGETS, ...(parsed.success ? parsed.data : {}) };
}

async function modelRow(tx: Tx, name: string) {
  const row = await tx.query.models.findFirst({ where: eq(models.name, name) });
  if (!row) throw NotFound(`model "${name}"`);
  return row;
}

export async function getBudgets(db: Tx, name: string): Promise<BudgetsView> {
  const row = await modelRow(db, name);
  const custom = BudgetsInput.safeParse(row.budgets ?? {});
  return { model: name, custom: custom.success ? custom.data : {}, effective: effectiveBudgets(row.budgets) };
}

/** Merges `set` into the model's budgets; `reset` names fields to return to their defaults. */
export async function setBudgets(db: Db, name: string, set: BudgetsInput, reset: Array<keyof BudgetsInput>, actor: string): Promise<BudgetsView> {
  return db.transaction(async (tx) => {
    const row = await modelRow(tx, name);
    const custom: BudgetsInput = { ...(BudgetsInput.safeParse(row.budgets ?? {}).data ?? {}), ...set };
    for (const k of reset) delete custom[k];
    await tx.update(models).set({ budgets: Object.keys(custom).length ? custom : null }).where(eq(models.id, row.id));
    await recordAudit(tx, actor, 'model.budgets.set', name, { set, reset });
    return { model: name, custom, effective: effectiveBudgets(custom) };
  });
}
