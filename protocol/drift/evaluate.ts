/**
 * Compares a current window's merged sketch with the version's reference sketch, feature by
 * feature and output by output, and gives a dataset-level verdict (Evidently's "dataset drift":
 * the share of drifted features against a threshold). Choices and defaults: DRIFT.md.
 *
 * Per feature the result carries the method, its `score` (the p-value for KS/chi-square, as
 * Evidently's `drift_score`; the distance otherwise), the raw `statistic` (D, χ², PSI, JS or normed
 * W1), the threshold and the verdict. A distance counts as drift only when a significance test at the
 * window's size agrees (`significance`): distances are biased upwards on small windows. A feature with fewer than `minSamples` non-null values on
 * either side is `insufficient_data`: not drifted, and left out of the dataset share, so a quiet
 * device or an always-null optional feature never raises nor hides an alarm. Outputs (prediction
 * drift) are evaluated the same way but reported apart and not counted in the dataset share, so a
 * model with 3 inputs does not get a 25 % say from its confidence histogram.
 *
 * @example
 * const report = evaluateDrift(referenceSketch, mergedWindow, { features: { site: { method: 'psi' } } });
 * report.dataset.drifted;                          // true when ≥ 50 % of evaluated features drifted
 * report.features.filter((f) => f.drifted).map((f) => f.feature);
 */
import { categoricalCounts } from '../sketch/categorical-sketch.ts';
import { sameEdges } from '../sketch/bin-edges.ts';
import { SketchError, SketchMismatchError } from '../sketch/errors.ts';
import type { FeatureSetSketch, FeatureSketch } from '../sketch/feature-set-sketch.ts';
import { chiSquareTest } from './chi-square.ts';
import { CATEGORICAL_METHODS, DriftConfig, NUMERIC_METHODS, P_VALUE_METHODS, type DriftConfigInput, type DriftMethod, type FeatureDriftOverride } from './config.ts';
import { jensenShannonDistance } from './jensen-shannon.ts';
import { ksBinned } from './ks.ts';
import { psi } from './psi.ts';
import { wassersteinBinned } from './wasserstein.ts';

export type DriftVerdict = 'drifted' | 'not_drifted' | 'insufficient_data';

export interface FeatureDriftResult {
  feature: string;
  kind: 'numeric' | 'categorical';
  method: DriftMethod;
  /** p-value for tests, distance otherwise; `null` when `insufficient_data`. */
  score: number | null;
  /** D (KS), χ², PSI, JS distance or normed W1; `null` when `insufficient_data`. */
  statistic: number | null;
  threshold: number;
  /** The test's p-value: the score of KS/chi-square, the companion test's for distances. */
  pValue?: number;
  /** For distances: the significance test that had to agree (absent when `significance` is null). */
  significance?: { method: 'ks' | 'chisquare'; pValue: number; alpha: number };
  drifted: boolean;
  verdict: DriftVerdict;
  /** Why a feature is `insufficient_data`: which side (reference or window) has too few values. */
  reason?: string;
  /** Non-null values in the current window / in the reference. */
  n: number;
  referenceN: number;
}

export interface DriftReport {
  features: FeatureDriftResult[];
  outputs: FeatureDriftResult[];
  dataset: {
    /** Features with a verdict other than `insufficient_data`. */
    evaluated: number;
    driftedCount: number;
    /** driftedCount / evaluated (0 when nothing was evaluated). */
    driftedShare: number;
    threshold: number;
    drifted: boolean;
    verdict: DriftVerdict;
  };
  /** Which rule picked the automatic methods. */
  referenceRows: number;
}

/** Raised for a configuration that cannot apply to the sketches (e.g. KS on a categorical feature). */
export class DriftConfigError extends SketchError {
  override readonly name = 'DriftConfigError';
}

function resolveMethod(kind: 'numeric' | 'categorical', override: FeatureDriftOverride | undefined, cfg: DriftConfig, referenceRows: number): DriftMethod {
  const small = referenceRows <= cfg.smallReferenceRows;
  const fallback = kind === 'numeric' ? cfg.numericMethod : cfg.categoricalMethod;
  const m = override?.method ?? fallback;
  if (m === 'auto') return kind === 'numeric' ? (small ? 'ks' : 'wasserstein') : small ? 'chisquare' : 'jensenshannon';
  const allowed: readonly string[] = kind === 'numeric' ? NUMERIC_METHODS : CATEGORICAL_METHODS;
  if (!allowed.includes(m)) throw new DriftConfigError('invalid_input', `method ${m} does not apply to ${kind} features`);
  return m;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function assertSameLayout(name: string, ref: FeatureSketch, cur: FeatureSketch): void {
  if (ref.kind !== cur.kind) throw new SketchMismatchError('kind_mismatch', `${name}: ${ref.kind} vs ${cur.kind}`);
  if (ref.kind === 'numeric' && cur.kind === 'numeric' && !sameEdges(ref.edges, cur.edges)) {
    throw new SketchMismatchError('edges_mismatch', `${name}: bin edges differ from the reference`);
  }
  if (ref.kind === 'categorical' && cur.kind === 'categorical' && !sameList(ref.categories, cur.categories)) {
    throw new SketchMismatchError('categories_mismatch', `${name}: categories differ from the reference`);
  }
}

/**
 * Evaluates one feature (or output) sketch pair; exported for callers that compare single sketches.
 *
 * @example
 * evaluateFeatureDrift('temp', ref.features.temp, cur.features.temp, { numericMethod: 'psi' });
 */
export function evaluateFeatureDrift(
  name: string,
  reference: FeatureSketch,
  current: FeatureSketch,
  config: DriftConfigInput = {},
  referenceRows: number = reference.count,
  override?: FeatureDriftOverride,
): FeatureDriftResult {
  const cfg = DriftConfig.parse(config);
  return evaluateOne(name, reference, current, cfg, referenceRows, override);
}

function evaluateOne(name: string, ref: FeatureSketch, cur: FeatureSketch, cfg: DriftConfig, referenceRows: number, override: FeatureDriftOverride | undefined): FeatureDriftResult {
  assertSameLayout(name, ref, cur);
  const method = resolveMethod(ref.kind, override, cfg, referenceRows);
  const threshold = override?.threshold ?? cfg.thresholds[method];
  const base = { feature: name, kind: ref.kind, method, threshold, n: cur.count, referenceN: ref.count };
  if (cur.count < cfg.minSamples || ref.count < cfg.minSamples) {
    // Name the side that is short: a reference that is too small never gets better by waiting.
    const reason =
      ref.count < cfg.minSamples
        ? `reference has ${ref.count} values, needs ${cfg.minSamples} (minSamples): set a larger reference`
        : `window has ${cur.count} values, needs ${cfg.minSamples} (minSamples)`;
    return { ...base, score: null, statistic: null, drifted: false, verdict: 'insufficient_data', reason };
  }
  const refCounts = ref.kind === 'numeric' ? ref.bins : categoricalCounts(ref);
  const curCounts = cur.kind === 'numeric' ? cur.bins : categoricalCounts(cur);
  let score: number;
  let statistic: number;
  let pValue: number | undefined;
  switch (method) {
    case 'ks': {
      const r = ksBinned(refCounts, curCounts, { maxEffectiveN: cfg.maxEffectiveN });
      ({ statistic, pValue } = r);
      score = r.pValue;
      break;
    }
    case 'chisquare': {
      const r = chiSquareTest(refCounts, curCounts, { maxEffectiveN: cfg.maxEffectiveN });
      ({ statistic, pValue } = r);
      score = r.pValue;
      break;
    }
    case 'wasserstein':
      if (ref.kind !== 'numeric' || cur.kind !== 'numeric') throw new DriftConfigError('invalid_input', 'wasserstein needs numeric sketches');
      score = statistic = wassersteinBinned(ref, cur).normed;
      break;
    case 'psi':
      score = statistic = psi(refCounts, curCounts, cfg.psiEpsilon);
      break;
    case 'jensenshannon':
      score = statistic = jensenShannonDistance(refCounts, curCounts);
      break;
  }
  let drifted = P_VALUE_METHODS.has(method) ? score < threshold : score >= threshold;
  let significance: FeatureDriftResult['significance'];
  if (!P_VALUE_METHODS.has(method) && cfg.significance !== null) {
    // A distance says how large a change is, not whether the window is big enough to tell it from
    // noise; the test at this window's nₑ does. Both must agree (DRIFT.md, "Small windows").
    const test = ref.kind === 'numeric' ? ksBinned(refCounts, curCounts, { maxEffectiveN: cfg.maxEffectiveN }) : chiSquareTest(refCounts, curCounts, { maxEffectiveN: cfg.maxEffectiveN });
    significance = { method: ref.kind === 'numeric' ? 'ks' : 'chisquare', pValue: test.pValue, alpha: cfg.significance };
    pValue = test.pValue;
    drifted = drifted && test.pValue < cfg.significance;
  }
  return {
    ...base,
    score,
    statistic,
    ...(pValue !== undefined ? { pValue } : {}),
    ...(significance ? { significance } : {}),
    drifted,
    verdict: drifted ? 'drifted' : 'not_drifted',
  };
}

/**
 * Evaluates every feature present in the reference and every output both sketches carry.
 * Throws `SketchMismatchError` when a feature is missing from `current` or was binned differently
 * (ingest validates `stats` messages against the reference, so this signals a bug, not bad data),
 * and `DriftConfigError` for a method that does not fit a feature's kind.
 *
 * @example
 * const { dataset } = evaluateDrift(reference, cohortWindow); // dataset.verdict
 */
export function evaluateDrift(reference: FeatureSetSketch, current: FeatureSetSketch, config: DriftConfigInput = {}): DriftReport {
  const cfg = DriftConfig.parse(config);
  const referenceRows = reference.quality.rows;
  const features: FeatureDriftResult[] = [];
  for (const [name, ref] of Object.entries(reference.features)) {
    const override = Object.hasOwn(cfg.features, name) ? cfg.features[name] : undefined;
    if (override?.enabled === false) continue;
    if (!Object.hasOwn(current.features, name)) throw new SketchMismatchError('features_mismatch', `${name}: missing from the current sketch`);
    features.push(evaluateOne(name, ref, current.features[name], cfg, referenceRows, override));
  }
  const outputs: FeatureDriftResult[] = [];
  for (const key of ['predictedClass', 'confidence', 'value'] as const) {
    const ref = reference.outputs[key];
    const cur = current.outputs[key];
    if (!ref || !cur) continue;
    const override = Object.hasOwn(cfg.outputs, key) ? cfg.outputs[key] : undefined;
    if (override?.enabled === false) continue;
    outputs.push(evaluateOne(key, ref, cur, cfg, referenceRows, override));
  }
  const evaluated = features.filter((f) => f.verdict !== 'insufficient_data').length;
  const driftedCount = features.filter((f) => f.drifted).length;
  const driftedShare = evaluated > 0 ? driftedCount / evaluated : 0;
  const drifted = evaluated > 0 && driftedShare >= cfg.datasetThreshold;
  return {
    features,
    outputs,
    dataset: {
      evaluated,
      driftedCount,
      driftedShare,
      threshold: cfg.datasetThreshold,
      drifted,
      verdict: evaluated === 0 ? 'insufficient_data' : drifted ? 'drifted' : 'not_drifted',
    },
    referenceRows,
  };
}
