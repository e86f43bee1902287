/**
 * Mergeable statistics sketches shared by the agent (which builds them) and the server (which
 * merges them and compares them with the reference). See protocol/DRIFT.md.
 *
 * @example
 * import { createFeatureSetSketch, addRow, mergeFeatureSetSketches } from '../protocol/sketch/index.ts';
 */
export * from './errors.ts';
export * from './bin-edges.ts';
export * from './numeric-sketch.ts';
export * from './categorical-sketch.ts';
export * from './top-k-sketch.ts';
export * from './latency-histogram.ts';
export * from './image-features.ts';
export * from './feature-set-sketch.ts';
export * from './discrete-edges.ts';
export * from './reference-profile.ts';
export * from './random.ts';
