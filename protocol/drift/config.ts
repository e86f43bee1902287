/**
 * Drift evaluation settings as a zod schema, so they can be stored per model/cohort, edited over
 * the API and parsed once with every default filled in. Defaults and their reasons are in
 * protocol/DRIFT.md; in short they follow Evidently's data-drift preset:
 *
 * - `method: 'auto'` picks by reference size: ≤ `smallReferenceRows` (1,000) rows → a test
 *   (KS for numeric, chi-square for categorical) at p < 0.05; larger → a distance (normed
 *   Wasserstein for numeric, Jensen–Shannon for categorical) at ≥ 0.1.
 * - a dataset drifts when ≥ `datasetThreshold` (50 %) of the evaluated features drift.
 * - below `minSamples` (100) non-null values on either side a feature is `insufficient_data`.
 * - a distance only counts as drift when the significance test at the window's size agrees
 *   (`significance`, p < 0.05), so small windows are not flagged on sampling noise.
 * - `maxEffectiveN` (1,000) caps the effective sample size of KS and chi-square, so a test chosen
 *   by hand on a big reference does not flag practically irrelevant shifts; with the automatic
 *   choice (reference ≤ 1,000 rows) it never binds.
 *
 * @example
 * const config = DriftConfig.parse({ features: { temp: { method: 'psi', threshold: 0.2 } } });
 * const report = evaluateDrift(reference, current, config);
 */
import { z } from 'zod';

/** Methods applicable to numeric features (on bins). */
export const NUMERIC_METHODS = ['ks', 'wasserstein', 'psi', 'jensenshannon'] as const;
/** Methods applicable to categorical features (on category counts + other). */
export const CATEGORICAL_METHODS = ['chisquare', 'psi', 'jensenshannon'] as const;
/** Every method name. */
export const DRIFT_METHODS = ['ks', 'chisquare', 'wasserstein', 'psi', 'jensenshannon'] as const;
export type DriftMethod = (typeof DRIFT_METHODS)[number];

/** Methods whose score is a p-value (drift when p < threshold); the others are distances (drift when ≥ threshold). */
export const P_VALUE_METHODS: ReadonlySet<DriftMethod> = new Set(['ks', 'chisquare']);

const Threshold = z.number().positive().finite();

/** Per-feature (or per-output) settings; unset fields fall back to the defaults. */
export const FeatureDriftOverride = z.object({
  method: z.enum(DRIFT_METHODS).optional(),
  threshold: Threshold.optional(),
  /** Leave a feature out of the evaluation (and of the dataset share). */
  enabled: z.boolean().default(true),
});
export type FeatureDriftOverride = z.infer<typeof FeatureDriftOverride>;

/** The evaluation settings (see the module comment and DRIFT.md for defaults). */
export const DriftConfig = z.object({
  numericMethod: z.enum(['auto', ...NUMERIC_METHODS]).default('auto'),
  categoricalMethod: z.enum(['auto', ...CATEGORICAL_METHODS]).default('auto'),
  /** Default threshold per method: p-value level for tests, distance for the others. */
  thresholds: z
    .object({
      ks: Threshold.max(1).default(0.05),
      chisquare: Threshold.max(1).default(0.05),
      wasserstein: Threshold.default(0.1),
      jensenshannon: Threshold.max(1).default(0.1),
      psi: Threshold.default(0.1),
    })
    .prefault({}),
  /** Per input feature overrides, by feature name. */
  features: z.record(z.string(), FeatureDriftOverride).default({}),
  /** Per output overrides: keys `predictedClass`, `confidence`, `value`. */
  outputs: z.record(z.string(), FeatureDriftOverride).default({}),
  /** Reference row count up to which 'auto' uses the statistical tests. */
  smallReferenceRows: z.number().int().positive().default(1000),
  minSamples: z.number().int().min(1).default(100),
  datasetThreshold: z.number().min(0).max(1).default(0.5),
  /** Cap on nₑ = nm/(n+m) for KS and chi-square; `null` disables it. */
  maxEffectiveN: z.number().positive().nullable().default(1000),
  /**
   * Level of the significance test that must agree with a distance (Wasserstein, JS, PSI) before a
   * feature is called drifted: KS on the bins for numeric features, chi-square for categorical ones,
   * at the window's effective sample size. A distance alone is biased upwards on small windows
   * (sampling noise alone gives 100-row windows a normed W1 near 0.1); the test knows n. `null`
   * judges on the distance alone.
   */
  significance: z.number().positive().max(1).nullable().default(0.05),
  /** Replacement proportion for empty bins in PSI. */
  psiEpsilon: z.number().positive().max(0.01).default(1e-4),
});
export type DriftConfig = z.infer<typeof DriftConfig>;
export type DriftConfigInput = z.input<typeof DriftConfig>;
