// Reference rows from an image dataset: per image the drift feature row a device computes for the same
// image, through the same code (firmware-bundles/image-pixels.ts: sharp decode + resize with the
// bundle's preprocessing, then protocol/'s computeImageFeatures). The preprocessing comes from the
// newest bundle definition of the version or its nearest ancestor — the pixels the features are
// computed on depend on it (size, fit, grey or colour) — else from a `preprocess` given with the
// request; without either the request is refused. A classifier's outputs are filled by running the
// model over the same images on the server (imagePredictions), so prediction drift is measured too.
import { readFile } from 'node:fs/promises';
import { ImagePreprocess } from '../../firmware-bundles/definition.ts';
import { imageFeatureRowOf, type PixelSpec } from '../../firmware-bundles/image-pixels.ts';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import type { LoadedDataset } from '../datasets/dataset-service.ts';
import type { Tx } from '../db/client.ts';
import { Invalid } from '../errors.ts';
import { formatRef } from '../models/model-ref.ts';
import { resolveVersion } from '../models/model-service.ts';
import { toEvalDataset } from '../datasets/eval-dataset.ts';
import { analyzeInWorker } from '../optimize/analyze-in-worker.ts';
import { nearestDefinition, resolveBinding } from '../optimize/model-binding.ts';
import type { ReferenceInputRow } from './reference-service.ts';

export interface ImageReferenceSpec {
  spec: ImagePreprocess;
  /** Where the preprocessing came from, for the reference's `source`. */
  from: string;
}

/**
 * The image preprocessing devices run `ref` with: `given` (a bundle definition's image `preprocess`,
 * `input` optional) when present, else the nearest bundle definition's; a 400 when neither says.
 */
export async function imagePreprocessFor(tx: Tx, ref: string, given?: unknown): Promise<ImageReferenceSpec> {
  if (given !== undefined) {
    const parsed = ImagePreprocess.safeParse({ type: 'image', input: 'image', ...(given as object) });
    if (!parsed.success) throw Invalid(`preprocess: ${parsed.error.issues[0].path.join('.')}: ${parsed.error.issues[0].message}`);
    return { spec: parsed.data, from: 'given preprocess' };
  }
  const version = await resolveVersion(tx, ref);
  const label = formatRef(version.modelName, version.version);
  const found = await nearestDefinition(tx, version);
  if (!found) {
    throw Invalid(
      `${label} has no bundle definition (nor has an ancestor) to say how devices preprocess images, and image features are computed on the preprocessed pixels: ` +
        `build a bundle first (\`flotilla bundles build ${label} --def <dir>\`) or pass "preprocess" (a bundle definition's image preprocess) with the request`,
    );
  }
  if (found.def.preprocess.type !== 'image') throw Invalid(`${label} runs with tabular preprocessing (bundle ${found.bundleId}); an image dataset cannot be its reference`);
  return { spec: found.def.preprocess, from: `bundle ${found.bundleId}` };
}

/**
 * The model's answer per image of `data`, as a device's postprocessing reports it (top-1 class and
 * its score, softmax applied when the bundle says so), computed in the analysis worker on the
 * pixels `spec` produces. Null when the model is not a classifier (nothing to sketch as a class).
 */
export async function imagePredictions(tx: Tx, store: ArtifactStore, ref: string, data: LoadedDataset, spec: ImagePreprocess): Promise<{ outputs: NonNullable<ReferenceInputRow['outputs']>[]; numClasses: number } | null> {
  const version = await resolveVersion(tx, ref);
  const bytes = new Uint8Array(await readFile(store.pathOf(version.artifactSha256)));
  const binding = await resolveBinding(tx, version, bytes, spec);
  const def = (await nearestDefinition(tx, version))?.def;
  if (binding.task !== 'classification' || (def && def.postprocess.task !== 'classification')) return null;
  const dataset = await toEvalDataset(data, binding, store, { maxSamples: data.images?.length ?? 0 });
  const result = await analyzeInWorker({ kind: 'predict', model: bytes, dataset: { ...dataset, labels: undefined } });
  const { data: values, width } = result.outputs!;
  const outputs = topOfRows(values, width, def?.postprocess.softmax ?? false);
  return { outputs, numClasses: width };
}

/** Top-1 class and its score per row of `width` scores, as a device's postprocessing reports them (softmax applied when the bundle says so). */
export function topOfRows(values: Float32Array, width: number, softmax: boolean): NonNullable<ReferenceInputRow['outputs']>[] {
  const outputs: NonNullable<ReferenceInputRow['outputs']>[] = [];
  for (let i = 0; i * width < values.length; i++) {
    const row = values.subarray(i * width, (i + 1) * width);
    let best = 0;
    for (let c = 1; c < width; c++) if (row[c] > row[best]) best = c;
    let score = row[best];
    if (softmax) {
      // The agent's stable softmax: exp(x − max) / Σ.
      let sum = 0;
      for (let c = 0; c < width; c++) sum += Math.exp(row[c] - row[best]);
      score = 1 / sum;
    }
    outputs.push({ predictedClass: best, confidence: score });
  }
  return outputs;
}

/** One reference row per image of `data`: the image features devices compute with `spec`. */
export async function rowsFromImageDataset(data: LoadedDataset, store: ArtifactStore, spec: PixelSpec): Promise<ReferenceInputRow[]> {
  if (data.version.kind !== 'images' || !data.images) throw Invalid(`${data.version.ref} is not an image dataset`);
  const rows: ReferenceInputRow[] = [];
  for (const [i, item] of data.images.entries()) {
    try {
      rows.push({ values: await imageFeatureRowOf(spec, await readFile(store.pathOf(item.sha256))) });
    } catch (err) {
      throw Invalid(`${data.version.ref}: cannot decode image ${i + 1} (${item.file}): ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return rows;
}
