/**
 * The heavy half of the optimize / evaluate endpoints as one plain-data task (bytes and tensors in,
 * bytes and a report out), so it can run in a worker thread: onnxruntime-node's `session.run` is a
 * synchronous native call, and an evaluation is thousands of them plus a latency loop.
 *
 * The report: the version's metrics (task metric, size, gzip size, load time, latency p50/p95, peak
 * memory), the comparison with its baseline (agreement, accuracy drop, size ratios), the quality
 * budget verdict, and governance (slices, fairness gaps and verdict, permutation importance).
 */
import type { CalibrationData } from './calibrate.ts';
import { checkQualityBudget, DEFAULT_QUALITY_BUDGET, evaluateModel, evaluateVariant, type EvalDataset, type ModelMetrics, type QualityBudget, type VariantEvaluation } from './evaluate.ts';
import { DEFAULT_FAIRNESS_BUDGET, type FairnessBudget } from './fairness.ts';
import { governanceReport, type GovernanceReport } from './governance.ts';
import { optimizeModel, type OptimizeOptions, type OptimizeReport } from './index.ts';
import { EVAL_SESSION_OPTIONS } from './runtime.ts';

export type Budgets = Required<QualityBudget> & Required<FairnessBudget>;
/**
 * Defaults for a model with no budgets set. Demographic parity is reported but not gated by default
 * (1 = off): groups whose base rates differ (the demo data's regions do, by design) show a parity gap
 * even for a model that is equally accurate for both; equal opportunity and the accuracy gap are gated.
 */
export const DEFAULT_BUDGETS: Budgets = { ...DEFAULT_QUALITY_BUDGET, ...DEFAULT_FAIRNESS_BUDGET, maxDemographicParityDifference: 1 };

export type AnalysisTask =
  /** Only the model's outputs on the dataset (image references' prediction drift). */
  | { kind: 'predict'; model: Uint8Array; dataset: EvalDataset }
  | { kind: 'evaluate'; model: Uint8Array; baseline?: Uint8Array; dataset: EvalDataset; budgets: Budgets }
  | {
      kind: 'optimize';
      model: Uint8Array;
      options: Pick<OptimizeOptions, 'quantize' | 'prune'>;
      calibration?: CalibrationData;
      dataset: EvalDataset;
      budgets: Budgets;
    };

/** How the subject compares with its baseline: the variant evaluation without the two metric sets. */
export type Comparison = Omit<VariantEvaluation, 'parent' | 'variant'>;

export interface Verdict {
  accepted: boolean;
  reasons: string[];
}

export interface AnalysisReport {
  samples: number;
  task: EvalDataset['task'];
  metrics: ModelMetrics;
  baselineMetrics?: ModelMetrics;
  comparison?: Comparison;
  budgets: Budgets;
  quality: Verdict;
  governance: Omit<GovernanceReport, 'fairness'> & { fairness: Verdict };
  /** What gates the version: quality and fairness for an evaluation, quality for a variant. */
  verdict: Verdict;
  notes: string[];
}

export interface AnalysisResult {
  /** Absent for `predict`. */
  report?: AnalysisReport;
  /** predict only: the output rows. */
  outputs?: { data: Float32Array; width: number };
  /** optimize only: the variant's bytes and what the rewrite did. */
  variant?: Uint8Array;
  optimization?: OptimizeReport;
}

const LATENCY = { warmup: 20, maxIterations: 400, maxMs: 600 };

export async function runAnalysis(task: AnalysisTask): Promise<AnalysisResult> {
  if (task.kind === 'predict') return { outputs: (await evaluateModel(task.model, task.dataset, { sessionOptions: EVAL_SESSION_OPTIONS, latency: false, memory: false })).outputs };
  const notes: string[] = [];
  let subject: Uint8Array;
  let baseline: Uint8Array | undefined;
  let optimization: OptimizeReport | undefined;
  if (task.kind === 'optimize') {
    const out = await optimizeModel(task.model, { ...task.options, calibration: task.calibration });
    subject = out.bytes;
    baseline = task.model;
    optimization = out.report;
  } else {
    subject = task.model;
    baseline = task.baseline;
  }
  const evalOpts = { sessionOptions: EVAL_SESSION_OPTIONS, latency: LATENCY };
  let metrics: ModelMetrics;
  let baselineMetrics: ModelMetrics | undefined;
  let comparison: Comparison | undefined;
  let quality: Verdict = { accepted: true, reasons: [] };
  if (baseline) {
    const ev = await evaluateVariant(subject, baseline, task.dataset, evalOpts);
    metrics = ev.variant;
    baselineMetrics = ev.parent;
    comparison = {
      agreement: ev.agreement,
      accuracyDrop: ev.accuracyDrop,
      f1Drop: ev.f1Drop,
      rmseIncrease: ev.rmseIncrease,
      targetStd: ev.targetStd,
      maxAbsOutputDiff: ev.maxAbsOutputDiff,
      sizeRatio: ev.sizeRatio,
      gzipRatio: ev.gzipRatio,
    };
    // Agreement gates variants (they must behave like their parent). A new version evaluated against
    // its champion is expected to disagree where the champion was wrong, so only the task metric gates it.
    quality = checkQualityBudget(ev, task.kind === 'optimize' ? task.budgets : { ...task.budgets, minAgreement: 0 });
  } else {
    metrics = (await evaluateModel(subject, task.dataset, evalOpts)).metrics;
    notes.push('no champion or parent to compare with: the quality budget has nothing to check');
  }
  const gov = await governanceReport(subject, task.dataset, {
    budget: task.budgets,
    sessionOptions: EVAL_SESSION_OPTIONS,
    importance: task.dataset.sampleShape.length === 1 ? { repeats: 3, maxRows: 1000 } : false,
  });
  if (task.dataset.sampleShape.length !== 1) gov.notes.push('permutation importance is computed for tabular models only');
  // A variant is gated on quality against its parent: its slice gaps are the parent's data speaking,
  // reported here and gated when the version itself is evaluated against the champion.
  const gated = task.kind === 'optimize' ? quality.reasons : [...quality.reasons, ...gov.fairness.reasons];
  if (task.kind === 'optimize' && !gov.fairness.accepted) notes.push('the fairness budget is gated when a version is evaluated against its champion, not for variants');
  const reasons = gated;
  return {
    report: {
      samples: metrics.n,
      task: task.dataset.task,
      metrics,
      baselineMetrics,
      comparison,
      budgets: task.budgets,
      quality,
      governance: gov,
      verdict: { accepted: reasons.length === 0, reasons },
      notes,
    },
    variant: task.kind === 'optimize' ? subject : undefined,
    optimization,
  };
}
