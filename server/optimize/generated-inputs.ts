/**
 * Inputs for comparing a variant with its parent when nobody has data for the model (a third-party
 * model without labels): samples generated from the input shape the model declares, as its
 * preprocessing would produce them (normalized 8-bit pixels for image bindings, standard normal
 * values otherwise). Agreement and output error against the parent are measured on them; no task
 * metric is (there are no labels), and the report says the inputs were generated.
 *
 * @example
 * const data = generatedEvalDataset(binding, 256); // { task, inputs: Float32Array, sampleShape, inputName }
 */
import { gaussian, mulberry32 } from '../../protocol/sketch/random.ts';
import type { ModelBinding } from '../datasets/eval-dataset.ts';
import { generatedTensorFeeds } from '../datasets/tensor-eval.ts';
import { Invalid } from '../errors.ts';
import type { EvalDataset } from './evaluate.ts';

/** How the report names this source. */
export const GENERATED_SOURCE = 'generated from the declared input shape';

export function generatedEvalDataset(binding: ModelBinding, samples: number, seed = 1): EvalDataset {
  // Several inputs, or a tensor definition (pinned inputs, state, named dims): named feeds.
  if (binding.modelInputs.length > 1 || binding.tensor) return generatedTensorFeeds(binding, samples, seed);
  const shape = binding.sampleShape;
  if (shape.some((d) => d === null || d <= 0)) {
    throw Invalid(`input "${binding.inputName}" has a symbolic dim after the batch axis ([batch, ${shape.map((d) => d ?? '?').join(', ')}]): give an unlabelled dataset to compare on (--eval <dataset@N>)`);
  }
  const sampleShape = shape as number[];
  const per = sampleShape.reduce((a, b) => a * b, 1);
  const rand = mulberry32(seed);
  const normal = gaussian(rand);
  const inputs = new Float32Array(samples * per);
  const img = binding.image;
  const channels = img ? (img.channels === 'gray' ? 1 : 3) : 1;
  for (let i = 0; i < inputs.length; i++) {
    if (!img) {
      inputs[i] = normal();
      continue;
    }
    // Channel of element i, as the bundle's layout orders it.
    const within = i % per;
    const ch = img.layout === 'NCHW' ? Math.floor(within / (per / channels)) : within % channels;
    const mean = img.mean[img.mean.length === 1 ? 0 : ch] ?? 0;
    const std = img.std[img.std.length === 1 ? 0 : ch] ?? 1;
    inputs[i] = (Math.floor(rand() * 256) / img.scale - mean) / std;
  }
  return { task: binding.task, inputs, sampleShape, inputName: binding.inputName, ...(binding.outputName && { outputName: binding.outputName }) };
}
