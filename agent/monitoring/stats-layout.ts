// Which layout a bundle's `stats` windows are sketched on. The server ships the version's reference
// layout in bundle.json (`reference.layout`), or, when the reference was added or replaced after the
// build, in the signed manifest's `agentConfig.statsLayout`, which wins: sketching on exactly the
// reference's layout is what lets the windows merge with it. Bundles built without one fall back to what they do carry: numeric features
// from `reference.bins`, outputs from the postprocessing (a classifier's class count = its labels).
// With neither there is nothing the server could compare, so the bundle gets no statistics.
import type { BundleDefinition } from '../../firmware-bundles/definition.ts';
import { edgesProblem } from '../../protocol/sketch/bin-edges.ts';
import { createFeatureSetSketch, type FeatureLayout, type OutputLayout, type SketchLayout } from '../../protocol/sketch/feature-set-sketch.ts';

export function statsLayoutOf(definition: BundleDefinition, fromManifest?: SketchLayout): SketchLayout | null {
  const layout = fromManifest ?? definition.reference.layout ?? fallbackLayout(definition);
  if (!layout) return null;
  try {
    createFeatureSetSketch(layout); // refuses bad edges or class counts, which no window could carry
    return layout;
  } catch {
    return null;
  }
}

function fallbackLayout(definition: BundleDefinition): SketchLayout | null {
  const features: Record<string, FeatureLayout> = {};
  for (const [name, edges] of Object.entries(definition.reference.bins)) {
    if (name !== '__proto__' && edges.length > 0 && edgesProblem(edges) === null) features[name] = { kind: 'numeric', edges: edges.slice() };
  }
  const post = definition.postprocess;
  const labels = Array.isArray(post.labels) ? post.labels : [];
  // A regression output needs reference edges, which only a full layout carries.
  const classes = post.task === 'binary' ? 2 : post.task === 'classification' ? labels.length : 0;
  const outputs: OutputLayout = classes > 0 ? { task: 'classification', numClasses: classes } : { task: 'none' };
  if (Object.keys(features).length === 0 && outputs.task === 'none') return null;
  return { features, outputs };
}
