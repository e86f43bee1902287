/**
 * Drift measures and evaluation on binned sketches (see protocol/DRIFT.md).
 *
 * @example
 * import { evaluateDrift, DriftConfig } from '../protocol/drift/index.ts';
 * const report = evaluateDrift(reference, current, DriftConfig.parse({}));
 */
export * from './special-functions.ts';
export * from './counts.ts';
export * from './psi.ts';
export * from './ks.ts';
export * from './jensen-shannon.ts';
export * from './wasserstein.ts';
export * from './chi-square.ts';
export * from './config.ts';
export * from './evaluate.ts';
export * from './reference-warnings.ts';
