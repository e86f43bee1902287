// Reference-vs-live histograms of a drift evaluation: per feature, the reference profile's bin counts
// and the window's merged counts on the same bins (the layout is shared, so they line up exactly).
// The console draws them as an overlay (numeric) or side-by-side bars (categorical).
import type { FeatureSetSketch, FeatureSketch } from '../../protocol/sketch/feature-set-sketch.ts';

export type FeatureHistogram =
  | {
      feature: string;
      kind: 'numeric';
      /** The reference edges (E); counts have E + 1 entries: underflow, E − 1 interior bins, overflow. */
      edges: number[];
      reference: number[];
      live: number[];
    }
  | {
      feature: string;
      kind: 'categorical';
      /** The reference categories, then "other" (values the reference never saw). */
      categories: string[];
      reference: number[];
      live: number[];
    };

/** One histogram per feature of the reference, in the reference's feature order. */
export function driftHistograms(reference: FeatureSetSketch, live: FeatureSetSketch): FeatureHistogram[] {
  return Object.entries(reference.features).map(([feature, ref]) => histogramOf(feature, ref, live.features[feature]));
}

function histogramOf(feature: string, ref: FeatureSketch, live: FeatureSketch | undefined): FeatureHistogram {
  if (ref.kind === 'numeric') {
    const liveBins = live?.kind === 'numeric' ? live.bins : ref.bins.map(() => 0);
    return { feature, kind: 'numeric', edges: [...ref.edges], reference: [...ref.bins], live: [...liveBins] };
  }
  const liveCounts = live?.kind === 'categorical' ? [...live.counts, live.other] : [...ref.counts.map(() => 0), 0];
  return { feature, kind: 'categorical', categories: [...ref.categories, 'other'], reference: [...ref.counts, ref.other], live: liveCounts };
}
