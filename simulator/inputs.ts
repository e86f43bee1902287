// Simulated request rows for a tabular bundle, drawn so that an undrifted fleet looks like the
// version's reference: reference edges are quantiles (protocol/sketch/reference-profile.ts), so a bin
// picked uniformly and a value uniform inside it follows the reference's distribution up to the bin
// width. `--drift feature=f3,shift=0.5` adds 0.5 reference standard deviations to f3 (the standard
// deviation of that piecewise-uniform distribution). Categorical features draw a category uniformly.
import type { BundleDefinition } from '../firmware-bundles/definition.ts';
import { statsLayoutOf } from '../agent/monitoring/stats-layout.ts';
import type { FeatureLayout } from '../protocol/sketch/feature-set-sketch.ts';

export interface DriftSpec {
  feature: string;
  /** In reference standard deviations. */
  shift: number;
}

type Sampler = () => number | string;

/** Mean and standard deviation of the distribution uniform within each of the equal-mass bins. */
export function piecewiseUniformStd(edges: readonly number[]): number {
  const bins = edges.length - 1;
  if (bins < 1) return 1;
  let m1 = 0;
  let m2 = 0;
  for (let i = 0; i < bins; i++) {
    const a = edges[i];
    const b = edges[i + 1];
    m1 += (a + b) / 2 / bins;
    m2 += (a * a + a * b + b * b) / 3 / bins;
  }
  return Math.sqrt(Math.max(0, m2 - m1 * m1)) || 1;
}

function numericSampler(edges: readonly number[], shift: number): Sampler {
  if (edges.length < 2) return () => gaussian() + shift;
  const offset = shift * piecewiseUniformStd(edges);
  return () => {
    const i = Math.floor(Math.random() * (edges.length - 1));
    return edges[i] + Math.random() * (edges[i + 1] - edges[i]) + offset;
  };
}

function gaussian(): number {
  return Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
}

/** A row generator for the bundle, or null if it is not tabular (the simulator then sends no requests). */
export function rowGenerator(definition: BundleDefinition, drift: readonly DriftSpec[]): (() => Record<string, number | string>) | null {
  if (definition.preprocess.type !== 'tabular') return null;
  const layout = statsLayoutOf(definition);
  const shifts = new Map(drift.map((d) => [d.feature, d.shift]));
  const samplers: Array<[string, Sampler]> = definition.preprocess.features.map((f) => {
    const fl: FeatureLayout | undefined = layout?.features[f.name];
    const shift = shifts.get(f.name) ?? 0;
    if (fl?.kind === 'categorical') return [f.name, () => fl.categories[Math.floor(Math.random() * fl.categories.length)]];
    return [f.name, numericSampler(fl?.kind === 'numeric' ? fl.edges : [], shift)];
  });
  return () => {
    const row: Record<string, number | string> = {};
    for (const [name, s] of samplers) row[name] = s();
    return row;
  };
}
