/**
 * What to tell a user at upload about a reference that is too small for the evaluation to be
 * stable, rather than after the alerts. Two limits:
 *
 * - `minSamples` (per feature): a feature with fewer non-null reference values is never evaluated
 *   (`insufficient_data` in every window).
 * - `STABLE_REFERENCE_ROWS` (5,000): every window is compared with the same reference sample, so
 *   that sample's own noise is shared by all of them. Measured with the defaults and 1,000-row
 *   windows (DRIFT.md): a fixed 500-row reference made one unshifted feature flag in 42 % of
 *   windows, a fixed 1,000-row one up to 8.5 % per feature (24.5 % for one categorical feature
 *   across seeds); 5,000-row references stayed at or below 0.5 % on every feature.
 *
 * @example
 * referenceWarnings(profile.sketch, DriftConfig.parse({}))
 * // ['reference has 400 rows; below 5,000 …', 'feature "x": reference has 40 values, needs 100 (minSamples) …']
 */
import type { FeatureSetSketch } from '../sketch/feature-set-sketch.ts';
import type { DriftConfig } from './config.ts';

/** Reference rows from which the shared-sample effect stays below ~0.5 % per feature (measured). */
export const STABLE_REFERENCE_ROWS = 5000;

export function referenceWarnings(sketch: FeatureSetSketch, config: Pick<DriftConfig, 'minSamples'>): string[] {
  const out: string[] = [];
  const rows = sketch.quality.rows;
  if (rows < STABLE_REFERENCE_ROWS) {
    out.push(
      `reference has ${rows} rows; below ${STABLE_REFERENCE_ROWS.toLocaleString('en-US')} its own sampling noise is shared by every window, so single features false-alarm more often ` +
        `(a fixed 500-row reference flagged an unshifted feature in 42 % of 1,000-row windows); use ≥ ${STABLE_REFERENCE_ROWS.toLocaleString('en-US')} rows or act on the dataset verdict`,
    );
  }
  const short = (name: string, count: number, what: string) => {
    if (count < config.minSamples) out.push(`${what} "${name}": reference has ${count} values, needs ${config.minSamples} (minSamples), so it will always be insufficient_data`);
  };
  for (const [name, f] of Object.entries(sketch.features)) short(name, f.count, 'feature');
  for (const [name, o] of Object.entries(sketch.outputs)) if (o) short(name, o.count, 'output');
  return out;
}
