// Reference rows from a tensor dataset (.npy / .npz / JSON lines of named tensors) for a model with a
// `tensor` bundle: per sample the row a device computes for the same request — the definition's
// summaries (firmware-bundles/tensor-summaries.ts, the agent's own code) over the sample's inputs and
// over the outputs the model gives for them. The model runs in the analysis worker with the feeds
// evaluation uses (server/datasets/tensor-eval.ts: pinned inputs as pinned, state carried from sample
// to sample, as a device runs a stream). The row's outputs are what the device records for the
// answer — a classifier's top-1 class and score, a binary model's label and probability, a
// regressor's value — so prediction drift is measured too.
import { readFile } from 'node:fs/promises';
import type { BundleDefinition, TensorPreprocess } from '../../firmware-bundles/definition.ts';
import { summaryRow } from '../../firmware-bundles/tensor-summaries.ts';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import type { LoadedDataset } from '../datasets/dataset-service.ts';
import { tensorEvalDataset } from '../datasets/tensor-eval.ts';
import type { Tx } from '../db/client.ts';
import { Invalid } from '../errors.ts';
import { formatRef } from '../models/model-ref.ts';
import { resolveVersion } from '../models/model-service.ts';
import { analyzeInWorker } from '../optimize/analyze-in-worker.ts';
import { nearestDefinition, resolveBinding } from '../optimize/model-binding.ts';
import { topOfRows } from './image-reference.ts';
import type { ReferenceInputRow } from './reference-service.ts';

/** One reference row per sample of the tensor dataset `data`, with `numClasses` when outputs were filled. */
export async function rowsFromTensorDataset(tx: Tx, store: ArtifactStore, ref: string, data: LoadedDataset): Promise<{ rows: ReferenceInputRow[]; numClasses?: number }> {
  if (data.version.kind !== 'tensors' || !data.tensors) throw Invalid(`${data.version.ref} is not a tensor dataset`);
  const version = await resolveVersion(tx, ref);
  const label = formatRef(version.modelName, version.version);
  const found = await nearestDefinition(tx, version);
  const summaries = found?.def.preprocess.type === 'tensor' ? (found.def.preprocess as TensorPreprocess).summaries : undefined;
  if (!found || !summaries || Object.keys(summaries).length === 0) {
    throw Invalid(
      `${label} has no \`tensor\` bundle definition with summaries (nor has an ancestor), and a raw-tensor model's drift features are the summaries it names ` +
        `(e.g. "summaries": {"frame_rms": {"input": "input", "stat": "rms"}}): add them to the definition and build a bundle (\`flotilla bundles build ${label} --def <dir>\`) first`,
    );
  }
  const bytes = new Uint8Array(await readFile(store.pathOf(version.artifactSha256)));
  const binding = await resolveBinding(tx, version, bytes);
  const dataset = tensorEvalDataset(data.tensors, binding, data.tensors.n);
  const samples = dataset.feeds!.samples;

  // The outputs the summaries read, and the postprocess output for the rows' outputs (prediction drift).
  const post = found.def.postprocess;
  const predicts = (post.task === 'classification' || post.task === 'binary' || post.task === 'regression') && binding.outputName !== undefined;
  const names = new Set<string>(Object.values(summaries).flatMap((s) => ('output' in s ? [s.output] : [])));
  if (predicts) names.add(binding.outputName!);
  const outputs = new Map<string, { data: Float32Array; width: number }>();
  for (const name of names) {
    const result = await analyzeInWorker({ kind: 'predict', model: bytes, dataset: { ...dataset, labels: undefined, outputName: name } });
    outputs.set(name, result.outputs!);
  }
  const predicted = predicts ? rowOutputs(post, outputs.get(binding.outputName!)!) : undefined;
  const rows = samples.map((inputs, i): ReferenceInputRow => {
    const answered = Object.fromEntries([...outputs].map(([name, o]) => [name, { data: o.data.subarray(i * o.width, (i + 1) * o.width) }]));
    const values = summaryRow(summaries, inputs, answered);
    return predicted ? { values, outputs: predicted[i] } : { values };
  });
  const numClasses = post.task === 'classification' && predicts ? outputs.get(binding.outputName!)!.width : post.task === 'binary' ? 2 : undefined;
  return { rows, ...(numClasses !== undefined && { numClasses }) };
}

/**
 * Per sample, the output a device's statistics record for the same answer (agent/monitoring/
 * stats-sample.ts over agent/runtime/postprocess.ts): a classifier's top-1 class and score; a binary
 * model's thresholded label (1 at or above the threshold) with the probability (the row's first
 * value) as confidence; a regressor's first value.
 */
function rowOutputs(post: BundleDefinition['postprocess'], o: { data: Float32Array; width: number }): NonNullable<ReferenceInputRow['outputs']>[] {
  if (post.task === 'classification') return topOfRows(o.data, o.width, post.softmax);
  const n = o.width ? o.data.length / o.width : 0;
  return Array.from({ length: n }, (_, i) => {
    const first = o.data[i * o.width];
    return post.task === 'binary' ? { predictedClass: first >= post.threshold ? 1 : 0, confidence: first } : { value: first };
  });
}
