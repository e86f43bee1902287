/**
 * Inputs for comparing a variant with its parent taken from what devices actually saw: the samples
 * the agents captured for the model (opt-in sample capture, server/samples/). Without labels only
 * agreement and output error are measured, as with generated inputs, but on real traffic. The newest
 * samples of any version of the model are used, as the bundle's preprocessing turns them into tensors:
 * tabular rows in the binding's feature order, images decoded the way the agent decodes them.
 *
 * A sample the model cannot take (a missing or non-numeric feature, an image that does not decode) is
 * counted as unusable and left out. Raw-tensor models have no captured form yet (the agent does not
 * capture them), so they get none here.
 *
 * @example
 * const c = await capturedEvalDataset(db, 'sensors', binding);
 * if (c.usable >= MIN_CAPTURED_SAMPLES) evaluate(c.data);
 */
import type { Tx } from '../db/client.ts';
import { imageEvalInputs, type ModelBinding } from '../datasets/eval-dataset.ts';
import { snapshotSamples, type SnapshotRow } from '../samples/sample-snapshot.ts';
import type { EvalDataset } from './evaluate.ts';

/** Fewer usable samples than this say too little about agreement: generated inputs are used instead. */
export const MIN_CAPTURED_SAMPLES = 16;
/** The newest samples read: images are decoded in memory, so they are read in smaller numbers. */
const MAX_CAPTURED_ROWS = 1000;
const MAX_CAPTURED_IMAGES = 128;

export interface CapturedInputs {
  /** null when the model's inputs have no captured form (raw tensors, several inputs) or none was usable. */
  data: EvalDataset | null;
  /** Samples that became inputs. */
  usable: number;
  /** Samples read but left out (missing or non-numeric feature, undecodable image). */
  unusable: number;
}

/** How the report names this source. */
export function capturedSource(modelName: string): string {
  return `device samples captured for ${modelName} (newest)`;
}

export async function capturedEvalDataset(db: Tx, modelName: string, binding: ModelBinding): Promise<CapturedInputs> {
  const none = { data: null, usable: 0, unusable: 0 };
  if (binding.modelInputs.length > 1 || binding.tensor) return none;
  const image = binding.image;
  const rows = await snapshotSamples(db, { modelName, withLabels: false, latest: image ? MAX_CAPTURED_IMAGES : MAX_CAPTURED_ROWS });
  if (!rows.length) return none;
  const common = { task: binding.task, inputName: binding.inputName, ...(binding.outputName && { outputName: binding.outputName }) };
  if (image) {
    const parts: Float32Array[] = [];
    let sampleShape: number[] = [];
    for (const r of rows) {
      const b64 = typeof r.inputs.image === 'string' && Object.keys(r.inputs).length === 1 ? r.inputs.image : null;
      if (b64 === null) continue;
      const one = await imageEvalInputs(image, 1, async () => Buffer.from(b64, 'base64')).catch(() => null);
      if (!one) continue;
      parts.push(one.inputs);
      sampleShape = one.sampleShape;
    }
    if (!parts.length) return { ...none, unusable: rows.length };
    const inputs = new Float32Array(parts.length * parts[0].length);
    parts.forEach((p, i) => inputs.set(p, i * p.length));
    return { data: { ...common, inputs, sampleShape }, usable: parts.length, unusable: rows.length - parts.length };
  }
  return tabular(rows, binding, common);
}

function tabular(rows: SnapshotRow[], binding: ModelBinding, common: Pick<EvalDataset, 'task' | 'inputName' | 'outputName'>): CapturedInputs {
  if (binding.sampleShape.length !== 1) return { data: null, usable: 0, unusable: rows.length };
  // Without a bundle's feature list, the request's own key order is the only order there is.
  const features = binding.features ?? Object.keys(rows[rows.length - 1].inputs);
  const declared = binding.sampleShape[0];
  if (declared !== null && declared !== features.length) return { data: null, usable: 0, unusable: rows.length };
  const usable = rows.filter((r) => features.every((f) => typeof r.inputs[f] === 'number' && Number.isFinite(r.inputs[f])));
  if (!usable.length) return { data: null, usable: 0, unusable: rows.length };
  const D = features.length;
  const inputs = new Float32Array(usable.length * D);
  usable.forEach((r, i) => features.forEach((f, j) => (inputs[i * D + j] = r.inputs[f] as number)));
  return { data: { ...common, inputs, sampleShape: [D], featureNames: features }, usable: usable.length, unusable: rows.length - usable.length };
}
