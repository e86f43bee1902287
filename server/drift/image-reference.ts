// Reference rows from an image dataset: per image the drift feature row a device computes for the same
// image, through the same code (firmware-bundles/image-pixels.ts: sharp decode + resize with the
// bundle's preprocessing, then protocol/'s computeImageFeatures). The preprocessing comes from the
// newest bundle definition of the version or its nearest ancestor — the pixels the features are
// computed on depend on it (size, fit, grey or colour) — else from a `preprocess` given with the
// request; without either the request is refused. Outputs are left out (DRIFT.md, "Image references").
import { readFile } from 'node:fs/promises';
import { ImagePreprocess } from '../../firmware-bundles/definition.ts';
import { imageFeatureRowOf, type PixelSpec } from '../../firmware-bundles/image-pixels.ts';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import type { LoadedDataset } from '../datasets/dataset-service.ts';
import type { Tx } from '../db/client.ts';
import { Invalid } from '../errors.ts';
import { formatRef } from '../models/model-ref.ts';
import { resolveVersion } from '../models/model-service.ts';
import { nearestDefinition } from '../optimize/model-binding.ts';
import type { ReferenceInputRow } from './reference-service.ts';

export interface ImageReferenceSpec {
  spec: PixelSpec;
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
