/**
 * The registry side of optimization and evaluation:
 *
 * - {@link optimizeVersion}: quantize and/or prune a version, evaluate the result against it on a
 *   dataset, and register the result as a child version (same model, next number) with its variant
 *   name, recipe and evaluation report; a variant that breaks the model's budgets is registered as
 *   `rejected` with the reason, and bundle builds refuse it unless an admin overrides.
 * - {@link evaluateVersion}: evaluate a version against the model's champion (the `champion` alias,
 *   else the version's parent, else nothing), store the report with governance (slices, fairness
 *   gaps, permutation importance), and set the version's status from the budgets.
 *
 * The heavy work runs in a worker thread (analyze-in-worker.ts); database reads and writes stay here.
 * Evaluation uses at most MAX_EVAL_SAMPLES rows of the dataset (the first ones), so a request stays
 * bounded: seconds for the demo models.
 *
 * @example
 * const { version } = await optimizeVersion(db, store, { ref: 'sensors@1', dataset: 'sensors-val@1', quantize: { form: 'qdq', perChannel: true }, actor });
 * version.variant; // 'int8'; version.status: 'ready' | 'rejected'
 */
import { readFile } from 'node:fs/promises';
import { inlineExternalData, PROTOBUF_LIMIT } from '../onnx/external-data.ts';
import { Readable } from 'node:stream';
import { and, eq } from 'drizzle-orm';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import { recordAudit } from '../audit/audit-log.ts';
import { recordEvent } from '../events/event-log.ts';
import type { Db, Tx } from '../db/client.ts';
import { modelAliases, models, modelVersions, referenceProfiles } from '../db/schema.ts';
import { loadDataset } from '../datasets/dataset-service.ts';
import { GENERATED_SOURCE, generatedEvalDataset } from './generated-inputs.ts';
import { capturedEvalDataset, capturedSource, MIN_CAPTURED_SAMPLES } from './captured-inputs.ts';

/** Samples generated when a variant is compared with its parent without a dataset. */
const GENERATED_SAMPLES = 256;
import { toEvalDataset, type ModelBinding } from '../datasets/eval-dataset.ts';
import { Invalid } from '../errors.ts';
import { effectiveBudgets } from '../models/budgets.ts';
import { formatRef } from '../models/model-ref.ts';
import { describeQuantization } from '../models/version-facts.ts';
import { registerVersion, resolveVersion, versionView, type VersionRow, type VersionView } from '../models/model-service.ts';
import type { AnalysisReport } from './analysis.ts';
import { analyzeInWorker } from './analyze-in-worker.ts';
import type { OptimizeReport } from './index.ts';
import { resolveBinding } from './model-binding.ts';

export const MAX_EVAL_SAMPLES = 5000;
/** Calibration for data-aware pruning reads a few hundred samples (see prune-calibrated.ts). */
const MAX_CALIBRATION_SAMPLES = 512;

export interface EvaluationReport extends AnalysisReport {
  kind: 'evaluation' | 'variant';
  /** The dataset version evaluated on (name@N), or GENERATED_SOURCE. */
  dataset: string;
  /** Where the inputs came from: a dataset, the device samples captured for the model, or generated from the declared shape (the last two have no labels: agreement and output error only). */
  inputs?: 'dataset' | 'captured' | 'generated';
  /** Without a dataset: the captured samples looked at (`usable` became inputs when ≥ `minimum`; `unusable` were left out). */
  captured?: { usable: number; unusable: number; minimum: number };
  /** Rows the dataset had when only the first MAX_EVAL_SAMPLES were used. */
  truncatedFrom?: number;
  /** What the version was compared with: its champion, or its parent. */
  baseline: { ref: string; role: 'champion' | 'parent' } | null;
  /** Where the feature order, preprocessing and class names came from. */
  binding: string;
  evaluatedAt: string;
  evaluatedBy: string;
}

export interface OptimizeVersionInput {
  /** The version to optimize (name@N, name@alias). */
  ref: string;
  /**
   * Evaluation dataset (name@N), labelled or not. Without one, the variant is compared with its parent
   * on the device samples captured for the model when there are enough (captured-inputs.ts), else on
   * inputs generated from the declared input shape (generated-inputs.ts); the report says which.
   */
  dataset?: string;
  quantize?: { form: 'qdq' | 'integer'; perChannel: boolean };
  prune?: { sparsity: number; structured: boolean };
  /** A dataset (name@N) to calibrate pruning on: scores and repairs pruned layers. Never the evaluation set. */
  calibration?: string;
  /** Image preprocessing for image models with no bundle yet (a bundle definition's `preprocess`). */
  preprocess?: unknown;
  actor: string;
}

export interface OptimizeOutcome {
  version: VersionView;
  report: EvaluationReport;
}

/** The version's model as one self-contained file: weights kept in external data files are put back inside (the optimizer rewrites tensors in memory, and its variant ships as one file). */
async function modelBytes(store: ArtifactStore, row: VersionRow): Promise<Uint8Array> {
  const bytes = new Uint8Array(await readFile(store.pathOf(row.artifactSha256)));
  const external = row.facts?.externalData ?? [];
  if (external.length === 0) return bytes;
  const total = external.reduce((n, f) => n + f.size, bytes.length);
  if (total >= PROTOBUF_LIMIT) throw Invalid(`the model keeps ${total} bytes of weights in external data files: the optimizer works on a self-contained model, which protobuf limits to 2 GB; quantize it before export (onnxruntime.quantization) and push the result`, { externalData: external });
  const files = new Map<string, Uint8Array>();
  for (const f of external) files.set(f.path, new Uint8Array(await readFile(store.pathOf(f.sha256))));
  return inlineExternalData(bytes, (location) => files.get(location)!);
}

async function evalData(db: Tx, store: ArtifactStore, ref: string, binding: ModelBinding, maxSamples: number) {
  const loaded = await loadDataset(db, store, ref);
  return { ref: loaded.version.ref, data: await toEvalDataset(loaded, binding, store, { maxSamples }) };
}

function variantName(parent: VersionRow, input: OptimizeVersionInput): string {
  const parts = new Set((parent.variant ?? '').split('+').filter(Boolean));
  if (input.quantize) parts.add('int8');
  if (input.prune) parts.add('pruned');
  const rank = (p: string) => ['int8', 'pruned'].indexOf(p) >>> 0; // unknown parts sort last
  return [...parts].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b)).join('+');
}

/** The few numbers worth a column in `models versions`. */
function headlineMetrics(r: AnalysisReport): Record<string, number> {
  const m = r.metrics;
  const out: Record<string, number | undefined> = {
    accuracy: m.accuracy,
    f1Macro: m.f1Macro,
    rmse: m.rmse,
    agreement: r.comparison?.agreement,
    sizeRatio: r.comparison?.sizeRatio,
    latencyP50Ms: m.latency?.p50Ms,
  };
  return Object.fromEntries(Object.entries(out).filter((e): e is [string, number] => typeof e[1] === 'number' && Number.isFinite(e[1])));
}

/** Optimizes a version and registers the result as its child (ready or rejected). */
export async function optimizeVersion(db: Db, store: ArtifactStore, input: OptimizeVersionInput): Promise<OptimizeOutcome> {
  if (!input.quantize && !input.prune) throw Invalid('nothing to do: ask for quantize and/or prune');
  const parent = await resolveVersion(db, input.ref);
  const parentRef = formatRef(parent.modelName, parent.version);
  const trees = parent.facts?.trees;
  if (trees) {
    // Thresholds and leaf values are node attributes, not weight tensors: int8 and pruning have nothing to act on.
    throw Invalid(
      `${parentRef} is a tree ensemble (${trees.trees} trees, ${trees.nodes} nodes, ${trees.leaves} leaves): nothing to quantize or prune, its thresholds and leaf values are node attributes, not weight tensors; to make it smaller, train fewer or shallower trees`,
      { trees },
    );
  }
  const quantized = parent.facts?.quantization;
  if (input.quantize && quantized) {
    // Quantizing integer weights again would only stack rounding error on the exporter's.
    throw Invalid(`${parentRef} is already ${describeQuantization(quantized)}: nothing left to quantize; deploy it as it is`, { quantization: quantized });
  }
  const bytes = await modelBytes(store, parent);
  const binding = await resolveBinding(db, parent, bytes, input.preprocess);
  const captured = input.dataset ? undefined : await capturedEvalDataset(db, parent.modelName, binding);
  const source: NonNullable<EvaluationReport['inputs']> = input.dataset ? 'dataset' : captured!.data && captured!.usable >= MIN_CAPTURED_SAMPLES ? 'captured' : 'generated';
  const evaluation =
    source === 'dataset'
      ? await evalData(db, store, input.dataset!, binding, MAX_EVAL_SAMPLES)
      : source === 'captured'
        ? { ref: capturedSource(parent.modelName), data: { ...captured!.data!, truncatedFrom: undefined } }
        : { ref: GENERATED_SOURCE, data: { ...generatedEvalDataset(binding, GENERATED_SAMPLES), truncatedFrom: undefined } };
  const calibration = input.calibration ? await evalData(db, store, input.calibration, binding, MAX_CALIBRATION_SAMPLES) : undefined;
  if (calibration && calibration.ref === evaluation.ref) throw Invalid('calibrate on another dataset than the evaluation one, or the evaluation flatters the variant');
  const model = await db.query.models.findFirst({ where: eq(models.id, parent.modelId) });
  const result = await analyzeInWorker({
    kind: 'optimize',
    model: bytes,
    options: { quantize: input.quantize, prune: input.prune },
    calibration: calibration && { inputs: calibration.data.inputs, sampleShape: calibration.data.sampleShape, inputName: binding.inputName, ...(calibration.data.feeds && { feeds: calibration.data.feeds }) },
    dataset: evaluation.data,
    budgets: effectiveBudgets(model?.budgets),
  });
  const report: EvaluationReport = {
    kind: 'variant',
    dataset: evaluation.ref,
    inputs: source,
    ...(captured && (captured.usable || captured.unusable) ? { captured: { usable: captured.usable, unusable: captured.unusable, minimum: MIN_CAPTURED_SAMPLES } } : {}),
    ...(evaluation.data.truncatedFrom ? { truncatedFrom: evaluation.data.truncatedFrom } : {}),
    baseline: { ref: parentRef, role: 'parent' },
    binding: binding.source,
    evaluatedAt: new Date().toISOString(),
    evaluatedBy: input.actor,
    ...result.report!,
  };
  const variant = variantName(parent, input);
  const staged = await store.stage(Readable.from([Buffer.from(result.variant!)]), { maxBytes: Number.MAX_SAFE_INTEGER });
  const rejected = !report.verdict.accepted;
  const view = await registerVersion(db, store, staged, {
    name: parent.modelName,
    parent: parentRef,
    notes: `${variant} variant of ${parentRef}`,
    metrics: headlineMetrics(report),
    tags: {},
    actor: input.actor,
    extras: {
      status: rejected ? 'rejected' : 'ready',
      statusReason: rejected ? report.verdict.reasons.join('; ') : null,
      variant,
      recipe: recipeOf(input, result.optimization!, evaluation.ref, calibration?.ref),
      evaluation: report as unknown as Record<string, unknown>,
    },
    // A variant sees the same inputs as its parent: it inherits the reference profile, so drift on
    // devices running it is measured against the same reference.
    onRegistered: async (tx, versionId) => {
      const ref = await tx.query.referenceProfiles.findFirst({ where: eq(referenceProfiles.modelVersionId, parent.id) });
      if (ref) await tx.insert(referenceProfiles).values({ ...ref, modelVersionId: versionId, source: `inherited from ${parentRef}`, createdAt: new Date().toISOString(), createdBy: input.actor });
    },
  });
  return { version: view, report };
}

function recipeOf(input: OptimizeVersionInput, o: OptimizeReport, dataset: string, calibration?: string): Record<string, unknown> {
  return {
    ...(input.quantize ? { quantize: { form: o.form, perChannel: o.perChannel, quantizedParamShare: o.quantizedParamShare } } : {}),
    ...(input.prune ? { prune: { sparsity: input.prune.sparsity, structured: input.prune.structured, achievedSparsity: o.sparsity, method: o.pruning?.method, calibration: calibration ?? null } } : {}),
    dataset,
    sizeBefore: o.sizeBefore,
    sizeAfter: o.sizeAfter,
    paramsBefore: o.paramsBefore,
    paramsAfter: o.paramsAfter,
    opset: o.opset,
    // The parent was below the opset the rewrite needs and was lifted first: from, to and what changed.
    ...(o.opsetUpgrade && { opsetUpgrade: o.opsetUpgrade }),
    /** What onnxruntime should run it with (qdq variants: keep the int8 weights folded). */
    sessionOptions: o.sessionOptions,
  };
}

export interface EvaluateVersionInput {
  ref: string;
  /** Evaluation dataset (name@N). */
  dataset: string;
  preprocess?: unknown;
  actor: string;
}

/** The version a new one is compared with: the `champion` alias (when it is another version), else the parent. */
async function baselineOf(tx: Tx, version: VersionRow): Promise<{ row: VersionRow; role: 'champion' | 'parent' } | null> {
  const alias = await tx.query.modelAliases.findFirst({ where: and(eq(modelAliases.modelId, version.modelId), eq(modelAliases.alias, 'champion')) });
  if (alias && alias.versionId !== version.id) {
    const row = await tx.query.modelVersions.findFirst({ where: eq(modelVersions.id, alias.versionId) });
    if (row) return { row, role: 'champion' };
  }
  if (version.parentVersionId !== null) {
    const row = await tx.query.modelVersions.findFirst({ where: eq(modelVersions.id, version.parentVersionId) });
    if (row) return { row, role: 'parent' };
  }
  return null;
}

async function refOfRow(tx: Tx, row: VersionRow): Promise<string> {
  const m = await tx.query.models.findFirst({ where: eq(models.id, row.modelId) });
  return formatRef(m!.name, row.version);
}

/** Evaluates a version against its champion and stores the report; the budgets set its status. */
export async function evaluateVersion(db: Db, store: ArtifactStore, input: EvaluateVersionInput): Promise<OptimizeOutcome> {
  const version = await resolveVersion(db, input.ref);
  const label = formatRef(version.modelName, version.version);
  const bytes = await modelBytes(store, version);
  const binding = await resolveBinding(db, version, bytes, input.preprocess);
  const evaluation = await evalData(db, store, input.dataset, binding, MAX_EVAL_SAMPLES);
  const baseline = await baselineOf(db, version);
  const model = await db.query.models.findFirst({ where: eq(models.id, version.modelId) });
  const result = await analyzeInWorker({
    kind: 'evaluate',
    model: bytes,
    baseline: baseline ? await modelBytes(store, baseline.row) : undefined,
    dataset: evaluation.data,
    budgets: effectiveBudgets(model?.budgets),
  });
  const report: EvaluationReport = {
    kind: 'evaluation',
    dataset: evaluation.ref,
    ...(evaluation.data.truncatedFrom ? { truncatedFrom: evaluation.data.truncatedFrom } : {}),
    baseline: baseline ? { ref: await refOfRow(db, baseline.row), role: baseline.role } : null,
    binding: binding.source,
    evaluatedAt: new Date().toISOString(),
    evaluatedBy: input.actor,
    ...result.report!,
  };
  const rejected = !report.verdict.accepted;
  const view = await db.transaction(async (tx) => {
    await tx
      .update(modelVersions)
      .set({ evaluation: report as unknown as Record<string, unknown>, status: rejected ? 'rejected' : 'ready', statusReason: rejected ? report.verdict.reasons.join('; ') : null })
      .where(eq(modelVersions.id, version.id));
    await recordAudit(tx, input.actor, 'model.version.evaluate', label, {
      dataset: report.dataset,
      baseline: report.baseline?.ref ?? null,
      status: rejected ? 'rejected' : 'ready',
      reasons: report.verdict.reasons,
    });
    if (rejected && version.status !== 'rejected') await recordEvent(tx, 'model.version_rejected', label, { model: version.modelName, version: version.version, reason: report.verdict.reasons.join('; ') });
    return versionView(tx, version.id);
  });
  return { version: view, report };
}
