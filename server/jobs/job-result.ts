// What a finished training attempt turns into: a registered version with its lineage (parent, dataset
// version, trainer, parameters, metrics, trigger), a reference profile computed from the NEW training
// data (so drift is measured against what v2 learned), evaluation and optimization when the optimize
// service is there, a bundle built from the definition the parent runs with, and — if the policy says
// so — a canary rollout on the cohort that drifted. Each step logs to the job; a step that fails after
// registration fails the job without retraining (the version stays, named in the job).
import { and, desc, eq, inArray } from 'drizzle-orm';
import type { ArtifactStore, StagedUpload } from '../artifacts/artifact-store.ts';
import { buildAndStoreBundle } from '../bundles/bundle-service.ts';
import type { BundleDefinition } from '../../firmware-bundles/definition.ts';
import { cohortMembers } from '../cohorts/cohort-service.ts';
import type { Db, Tx } from '../db/client.ts';
import { bundles, deviceDesired, jobs, models, modelVersions, referenceProfiles } from '../db/schema.ts';
import { loadDataset, type DatasetVersionView } from '../datasets/dataset-service.ts';
import type { DesiredState } from '../deployments/desired-state.ts';
import { imagePredictions, imagePreprocessFor, rowsFromImageDataset } from '../drift/image-reference.ts';
import { setReferenceProfile, type ReferenceInputRow } from '../drift/reference-service.ts';
import type { ImagePreprocess } from '../../firmware-bundles/definition.ts';
import { formatRef } from '../models/model-ref.ts';
import { registerVersion } from '../models/model-service.ts';
import { evaluateVersion, optimizeVersion } from '../optimize/optimize-service.ts';
import { createRollout } from '../rollouts/rollout-service.ts';
import type { JobParams, JobRow, JobTrigger } from './job-service.ts';
import { redactTrainer } from './retrain-policy.ts';

export const JOB_ACTOR = 'system:retrain';

export interface ResultDeps {
  db: Db;
  store: ArtifactStore;
  desired: DesiredState;
}

export interface PublishedResult {
  version: string;
  rolloutId: string | null;
}

async function refOf(tx: Tx, versionId: number | null): Promise<string | null> {
  if (versionId === null) return null;
  const [r] = await tx.select({ name: models.name, version: modelVersions.version }).from(modelVersions).innerJoin(models, eq(models.id, modelVersions.modelId)).where(eq(modelVersions.id, versionId));
  return r ? formatRef(r.name, r.version) : null;
}

export async function publishResult(
  deps: ResultDeps,
  input: { job: JobRow; modelName: string; staged: StagedUpload; dataset: DatasetVersionView | null; metrics: Record<string, number>; params: Record<string, unknown>; log: (line: string) => void },
): Promise<PublishedResult> {
  const { db, store } = deps;
  const { job, log } = input;
  const trigger = job.trigger as unknown as JobTrigger;
  const parentRef = await refOf(db, job.parentVersionId);
  const lineage = {
    jobId: job.id,
    parent: parentRef,
    datasetVersion: input.dataset?.ref ?? null,
    trainer: redactTrainer(job.trainer),
    params: input.params,
    metrics: input.metrics,
    trigger,
  };
  const view = await registerVersion(db, store, input.staged, {
    name: input.modelName,
    parent: parentRef ?? undefined,
    notes: `trained by job ${job.id} (${trigger.kind}${trigger.cohort ? ` on ${trigger.cohort}` : ''})`,
    metrics: input.metrics,
    tags: { job: job.id },
    actor: JOB_ACTOR,
    extras: { lineage },
    // The job names its result in the same transaction that creates the version.
    onRegistered: async (tx, versionId) => {
      await tx.update(jobs).set({ resultVersionId: versionId, metrics: input.metrics }).where(eq(jobs.id, job.id));
    },
  });
  log(`registered ${view.ref}${parentRef ? ` (parent ${parentRef})` : ''}`);

  const { after = { evaluate: true }, data } = job.params as unknown as JobParams;
  const rolloutCohort = after.rollout?.cohort === 'drifted' ? trigger.cohort : after.rollout?.cohort;
  const base = await definitionToReuse(db, rolloutCohort ?? null, job);
  if (input.dataset) await referenceFromDataset(deps, view.ref, job.parentVersionId, input.dataset, base?.definition, log);

  const evalSet = data.evaluation ?? input.dataset?.ref;
  if (after.evaluate !== false && evalSet) {
    const { version, report } = await evaluateVersion(db, store, { ref: view.ref, dataset: evalSet, actor: JOB_ACTOR });
    log(`evaluated ${view.ref} on ${report.dataset}${report.baseline ? ` against ${report.baseline.ref} (${report.baseline.role})` : ''}: ${version.status}${version.statusReason ? ` (${version.statusReason})` : ''}`);
    if (version.status === 'rejected') {
      log('no optimization or rollout: the version broke its budgets (an admin may override it)');
      return { version: view.ref, rolloutId: null };
    }
  }
  if (after.optimize && evalSet) {
    const child = await optimizeVersion(db, store, { ref: view.ref, dataset: evalSet, quantize: after.optimize.quantize, prune: after.optimize.prune, actor: JOB_ACTOR });
    log(`optimized variant ${child.version.ref} (${child.version.variant}): ${child.version.status}${child.version.statusReason ? ` (${child.version.statusReason})` : ''}`);
  }
  const rollout = after.rollout;
  if (!rollout || rollout.strategy === 'none') return { version: view.ref, rolloutId: null };
  if (!rolloutCohort) {
    log('no rollout: the policy rolls out to the drifted cohort, and this job was not started by a drift alert');
    return { version: view.ref, rolloutId: null };
  }
  if (!base) {
    log(`no rollout: no bundle of ${input.modelName} to take the definition from; build one with \`flotilla bundles build\``);
    return { version: view.ref, rolloutId: null };
  }
  const bundle = await buildAndStoreBundle(db, store, { modelRef: view.ref, definition: reuseDefinition(base.definition), actor: JOB_ACTOR });
  log(`built bundle ${bundle.id} from the definition of ${base.bundleId}`);
  const started = await createRollout(db, deps.desired, { bundle: bundle.id, cohort: rolloutCohort, stages: rollout.stages, bakeS: rollout.bakeS, gates: rollout.gates, jobId: job.id, actor: JOB_ACTOR, store });
  const variantNote = started.assignedBundleId !== started.bundleId ? ` (the cohort's preferred variant: bundle ${started.assignedBundleId})` : '';
  log(`canary rollout ${started.id} on cohort ${rolloutCohort}${variantNote}: stages ${started.stages.join(' → ')}, bake ${started.bakeS} s`);
  return { version: view.ref, rolloutId: started.id };
}

/** The tabular input names a bundle definition feeds the model, or null. */
function inputNames(definition: unknown): Set<string> | null {
  const pre = (definition as Partial<BundleDefinition> | undefined)?.preprocess;
  return pre?.type === 'tabular' ? new Set(pre.features.map((f) => f.name)) : null;
}

/**
 * The new version's reference profile from the rows it was trained on, with the parent's bin count:
 * feature columns only (labels, groups and ids are not model inputs), and of those only the ones the
 * bundle feeds the model when a bundle tells. An image snapshot gives per-image features computed
 * with the image preprocessing of the definition the new bundle reuses (else the nearest bundle's).
 */
async function referenceFromDataset(
  deps: ResultDeps,
  ref: string,
  parentVersionId: number | null,
  dataset: DatasetVersionView,
  base: unknown,
  log: (line: string) => void,
): Promise<void> {
  const inputs = inputNames(base);
  const parentProfile = parentVersionId ? await deps.db.query.referenceProfiles.findFirst({ where: eq(referenceProfiles.modelVersionId, parentVersionId) }) : undefined;
  const loaded = await loadDataset(deps.db, deps.store, dataset.ref);
  if (dataset.kind === 'images') {
    // The bundle the new version will be built from decides the pixels devices compute features on.
    const reused = (base as Partial<BundleDefinition> | undefined)?.preprocess;
    let spec: ImagePreprocess;
    try {
      spec = reused?.type === 'image' ? reused : (await imagePreprocessFor(deps.db, ref)).spec;
    } catch (err) {
      log(`no reference profile set: ${(err as Error).message}`);
      return;
    }
    let rows = await rowsFromImageDataset(loaded, deps.store, spec);
    // Prediction drift: the new version's answers on the same images (a failure costs only the outputs).
    const predicted = await imagePredictions(deps.db, deps.store, ref, loaded, spec).catch((err: Error) => {
      log(`reference without outputs: ${err.message.split('\n')[0]}`);
      return null;
    });
    if (predicted) rows = rows.map((r, i) => ({ ...r, outputs: predicted.outputs[i] }));
    const profile = await setReferenceProfile(deps.db, ref, { rows, source: `dataset ${dataset.ref}`, options: { bins: parentProfile?.bins ?? 20, ...(predicted && { numClasses: predicted.numClasses }) }, actor: JOB_ACTOR });
    log(`reference profile of ${ref} from ${dataset.ref}: ${profile.rows} images, ${profile.features.length} image features (${spec.width}×${spec.height} ${spec.channels})`);
    return;
  }
  const features = loaded.columns.filter((c) => c.role === 'feature' && (!inputs || inputs.has(c.name)));
  const rows: ReferenceInputRow[] = loaded.rows.map((r) => ({ values: Object.fromEntries(features.map((c) => [c.name, r[c.name] ?? null])) }));
  const categorical = features.filter((c) => c.type === 'categorical').map((c) => c.name);
  const profile = await setReferenceProfile(deps.db, ref, { rows, source: 'json', options: { bins: parentProfile?.bins ?? 20, categorical }, actor: JOB_ACTOR });
  log(`reference profile of ${ref} from ${dataset.ref}: ${profile.rows} rows, ${profile.features.length} features`);
}

/**
 * The bundle whose definition the new version reuses: the one most of the cohort's devices run
 * (same model), else the newest bundle of the parent version, else the newest of the model.
 */
async function definitionToReuse(db: Db, cohort: string | null, job: JobRow): Promise<{ bundleId: string; definition: unknown } | null> {
  const modelVersionIds = (await db.select({ id: modelVersions.id }).from(modelVersions).where(eq(modelVersions.modelId, job.modelId))).map((v) => v.id);
  if (!modelVersionIds.length) return null;
  const members = cohort ? await cohortMembers(db, cohort).then((c) => c.members.map((m) => m.id)).catch(() => [] as string[]) : [];
  if (members.length) {
    const rows = await db
      .select({ bundleId: deviceDesired.bundleId })
      .from(deviceDesired)
      .innerJoin(bundles, eq(bundles.id, deviceDesired.bundleId))
      .where(and(inArray(deviceDesired.deviceId, members), inArray(bundles.modelVersionId, modelVersionIds)));
    const counts = new Map<string, number>();
    for (const r of rows) counts.set(r.bundleId, (counts.get(r.bundleId) ?? 0) + 1);
    const top = [...counts.entries()].sort((a, b) => b[1] - a[1])[0];
    if (top) {
      const b = (await db.query.bundles.findFirst({ where: eq(bundles.id, top[0]) }))!;
      return { bundleId: b.id, definition: b.definition };
    }
  }
  const fromParent = job.parentVersionId ? await db.query.bundles.findFirst({ where: eq(bundles.modelVersionId, job.parentVersionId), orderBy: desc(bundles.createdAt) }) : undefined;
  const any = fromParent ?? (await db.query.bundles.findFirst({ where: inArray(bundles.modelVersionId, modelVersionIds), orderBy: desc(bundles.createdAt) }));
  return any ? { bundleId: any.id, definition: any.definition } : null;
}

/** The parent bundle's definition for a new model: its smoke vectors are re-recorded and its reference edges replaced by the new version's. */
export function reuseDefinition(definition: unknown): Partial<BundleDefinition> {
  const { model: _model, smoke, reference: _reference, ...rest } = definition as BundleDefinition;
  return {
    ...rest,
    smoke: { tolerance: smoke?.tolerance ?? 1e-4, vectors: [], generate: Math.max(smoke?.generate ?? 0, smoke?.vectors?.length ?? 0, 1) },
    reference: { bins: {} },
  } as Partial<BundleDefinition>;
}
