// A model's retraining policy: when to train (node-cron schedule, drift alert open for long enough),
// with which trainer on which data, and what happens to the result (optimize, canary rollout).
// Stored as validated JSON per model; every change is audited. A `command` trainer runs a program on
// the control plane, so only admins may set one.
import { eq } from 'drizzle-orm';
import cron from 'node-cron';
import { z } from 'zod';
import { recordAudit } from '../audit/audit-log.ts';
import type { Db, Tx } from '../db/client.ts';
import { datasets, models, retrainPolicies } from '../db/schema.ts';
import { Forbidden, Invalid, NotFound } from '../errors.ts';

export const BUILTIN_MODELS = ['tabular-demo-mlp', 'image-demo-cnn'] as const;

export const BuiltinTrainer = z.object({
  kind: z.literal('builtin'),
  model: z.enum(BUILTIN_MODELS),
  epochs: z.number().int().min(1).max(500).optional(),
  lr: z.number().positive().max(1).optional(),
  seed: z.number().int().optional(),
  /** Start from the parent version's weights instead of from scratch. */
  fineTune: z.boolean().optional(),
});
export const CommandTrainer = z.object({
  kind: z.literal('command'),
  /** Program and arguments, run without a shell. */
  argv: z.array(z.string().min(1)).min(1),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment variable names: letters, digits, _'), z.string()).optional(),
});
export const WebhookTrainer = z.object({
  kind: z.literal('webhook'),
  url: z.url({ protocol: /^https?$/ }),
  /** HMAC-SHA256 key for x-flotilla-signature. */
  secret: z.string().min(1).optional(),
});
export const Trainer = z.discriminatedUnion('kind', [BuiltinTrainer, CommandTrainer, WebhookTrainer]);
export type Trainer = z.infer<typeof Trainer>;

export const DataSpec = z.object({
  /** Dataset name; the job snapshots its latest version (plus samples, when asked). */
  dataset: z.string().min(1),
  includeSamples: z.boolean().default(false),
  includeLabels: z.boolean().default(false),
  /** Dataset (name or name@N) the new version is evaluated on; default the training snapshot itself. */
  evaluation: z.string().min(1).optional(),
});
export type DataSpec = z.infer<typeof DataSpec>;

const Fraction = z.number().gt(0).max(1);
export const RolloutGates = z.object({
  /** Devices of a stage whose update failed (failed / rolled back) before the gate fails. */
  maxFailedUpdates: z.number().int().min(0).default(0),
  /** Devices of a stage active on the bundle / devices of the stage (superseded ones left out). */
  minUpdateSuccessRatio: z.number().min(0).max(1).default(0.95),
  /** errors / requests of the stage's devices since the stage started. */
  maxErrorRate: z.number().min(0).max(1).optional(),
  /**
   * Latency regression: the worst stage device's p95 over the cohort's p95 in the hour before the rollout
   * (default 1.2; null turns it off). Without data on either side after the bake it is `no-data`
   * (rollout-gates.ts), never a pass.
   */
  maxLatencyRatio: z.number().min(1).max(100).nullable().default(1.2),
  /** No drift alert opened for the new version on the cohort during the stage (default on). */
  drift: z.boolean().default(true),
  /** Shadow stage: share of compared rows whose top-1 class matches (classifiers). */
  minAgreement: z.number().min(0).max(1).default(0.95),
  /** Shadow stage: mean |active − candidate| of regressor outputs (no default: set it to gate a regressor). */
  maxMeanAbsDiff: z.number().min(0).optional(),
  /** Shadow stage: candidate p95 / active p95, on the worst device. */
  maxShadowLatencyRatio: z.number().gt(0).max(100).default(1.5),
  /** Shadow stage: candidate errors / requests it was given. */
  maxShadowErrorRate: z.number().min(0).max(1).default(0.01),
  /** Shadow stage: requests compared (all devices together) before the shadow gates can pass. */
  minShadowCompared: z.number().int().min(1).max(1_000_000).default(20),
  /**
   * Seconds a stage may run (bake included) while a gate still waits for data; then devices that did
   * not report are timed out and the rollout fails as `onFailure` says. Unset: a stage waits as long as it takes.
   */
  stageTimeoutS: z.number().int().min(1).max(30 * 86400).optional(),
  /** What a failed gate does: stop advancing, or put the stage's devices back on the previous bundle. */
  onFailure: z.enum(['pause', 'rollback']).default('pause'),
});
export type RolloutGates = z.infer<typeof RolloutGates>;

export const Stages = z
  .array(Fraction)
  .min(1)
  .max(20)
  .refine((s) => s.every((v, i) => i === 0 || v > s[i - 1]), 'stages must increase')
  .refine((s) => s.at(-1) === 1, 'the last stage must be 1 (the whole cohort)');

export const AfterSpec = z.object({
  /** Evaluate the new version against the champion (budgets decide ready / rejected; a rejected one is not rolled out). */
  evaluate: z.boolean().default(true),
  /** Optimized variants to derive from the new version (evaluated like any version). */
  optimize: z
    .object({
      quantize: z.object({ form: z.enum(['qdq', 'integer']).default('qdq'), perChannel: z.boolean().default(false) }).optional(),
      prune: z.object({ sparsity: z.number().gt(0).lt(1), structured: z.boolean().default(false) }).optional(),
    })
    .optional(),
  rollout: z
    .object({
      strategy: z.enum(['canary', 'none']).default('canary'),
      stages: Stages.default([0.5, 1]),
      bakeS: z.number().int().min(0).max(7 * 86400).default(300),
      /** `drifted` (the cohort whose alert triggered the job) or a cohort name. */
      cohort: z.string().min(1).default('drifted'),
      gates: RolloutGates.prefault({}),
    })
    .optional(),
});
export type AfterSpec = z.infer<typeof AfterSpec>;

export const PolicyInput = z.object({
  enabled: z.boolean().default(true),
  cron: z
    .string()
    .refine((v) => cron.validate(v), 'not a valid cron expression (node-cron: [sec] min hour day month weekday)')
    .nullable()
    .default(null),
  driftOpenForS: z.number().int().min(0).max(30 * 86400).nullable().default(null),
  trainer: Trainer,
  data: DataSpec,
  after: AfterSpec.default({ evaluate: true }),
  timeoutS: z.number().int().min(1).max(7 * 86400).default(3600),
  maxAttempts: z.number().int().min(1).max(10).default(2),
});
export type PolicyInput = z.infer<typeof PolicyInput>;

export interface PolicyView extends PolicyInput {
  model: string;
  updatedAt: string;
  updatedBy: string | null;
}

type PolicyRow = typeof retrainPolicies.$inferSelect;

/** The stored row as a parsed policy (secrets included: for the runner only, never for views). */
export function policyOf(row: PolicyRow): PolicyInput {
  return PolicyInput.parse({
    enabled: row.enabled,
    cron: row.cron,
    driftOpenForS: row.driftOpenForS,
    trainer: row.trainer,
    data: row.data,
    after: row.after,
    timeoutS: row.timeoutS,
    maxAttempts: row.maxAttempts,
  });
}

/** A trainer as shown to users: a webhook secret is never echoed. */
export function redactTrainer(trainer: Record<string, unknown>): Record<string, unknown> {
  return trainer.kind === 'webhook' && trainer.secret ? { ...trainer, secret: '(set)' } : trainer;
}

function view(model: string, row: PolicyRow): PolicyView {
  const p = policyOf(row);
  return { model, ...p, trainer: redactTrainer(p.trainer) as Trainer, updatedAt: row.updatedAt, updatedBy: row.updatedBy };
}

export async function modelByName(tx: Tx, name: string) {
  const model = await tx.query.models.findFirst({ where: eq(models.name, name) });
  if (!model) throw NotFound(`model "${name}"`);
  return model;
}

export async function getPolicy(db: Tx, name: string): Promise<PolicyView> {
  const model = await modelByName(db, name);
  const row = await db.query.retrainPolicies.findFirst({ where: eq(retrainPolicies.modelId, model.id) });
  if (!row) throw NotFound(`retraining policy of "${name}"`, { hint: `set one with \`flotilla retrain ${name} --policy policy.json\`` });
  return view(name, row);
}

export async function putPolicy(db: Db, name: string, input: unknown, actor: { name: string; isAdmin: boolean }): Promise<PolicyView> {
  const parsed = PolicyInput.safeParse(input);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
    throw Invalid(`invalid retraining policy: ${issues[0].path ? issues[0].path + ': ' : ''}${issues[0].message}`, { issues });
  }
  const p = parsed.data;
  if (p.trainer.kind === 'command' && !actor.isAdmin) throw Forbidden('a command trainer runs a program on the control plane: only admins may set one');
  return db.transaction(async (tx) => {
    const model = await modelByName(tx, name);
    const dataset = await tx.query.datasets.findFirst({ where: eq(datasets.name, p.data.dataset) });
    if (!dataset) throw Invalid(`dataset "${p.data.dataset}" not found: push it first with \`flotilla datasets push <file> --name ${p.data.dataset}\``);
    const row = { ...p, updatedAt: new Date().toISOString(), updatedBy: actor.name };
    const [stored] = await tx.insert(retrainPolicies).values({ modelId: model.id, ...row }).onConflictDoUpdate({ target: retrainPolicies.modelId, set: row }).returning();
    await recordAudit(tx, actor.name, 'retrain.policy.set', name, { ...p, trainer: redactTrainer(p.trainer) });
    return view(name, stored);
  });
}

export async function deletePolicy(db: Db, name: string, actor: string): Promise<void> {
  await db.transaction(async (tx) => {
    const model = await modelByName(tx, name);
    const gone = await tx.delete(retrainPolicies).where(eq(retrainPolicies.modelId, model.id)).returning({ id: retrainPolicies.modelId });
    if (!gone.length) throw NotFound(`retraining policy of "${name}"`);
    await recordAudit(tx, actor, 'retrain.policy.delete', name);
  });
}
