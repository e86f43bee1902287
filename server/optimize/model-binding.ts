// What a model's input and output mean, for evaluating it on a dataset: taken from the newest bundle
// built from the version or its nearest ancestor (feature order, image preprocessing, class labels —
// exactly what devices run), else from the ONNX metadata the built-in trainers write
// (`flotilla.features`, `flotilla.labels`), else from the declared input and output shapes.
import { desc, eq } from 'drizzle-orm';
import { ImagePreprocess, type BundleDefinition } from '../../firmware-bundles/definition.ts';
import type { Tx } from '../db/client.ts';
import { bundles, modelVersions } from '../db/schema.ts';
import type { ModelBinding } from '../datasets/eval-dataset.ts';
import { Invalid } from '../errors.ts';
import type { VersionRow } from '../models/model-service.ts';
import type { TensorInfo } from '../onnx/inspect.ts';
import { onnx } from '../onnx/onnx-proto.ts';

const MAX_ANCESTORS = 16;

/** The newest bundle definition of the version or its nearest ancestor (what devices run), or null. */
export async function nearestDefinition(tx: Tx, version: VersionRow): Promise<{ def: BundleDefinition; bundleId: string } | null> {
  let current: VersionRow | undefined = version;
  for (let hop = 0; current && hop < MAX_ANCESTORS; hop++) {
    const row = await tx.query.bundles.findFirst({ where: eq(bundles.modelVersionId, current.id), orderBy: desc(bundles.createdAt) });
    if (row) return { def: row.definition as BundleDefinition, bundleId: row.id };
    if (current.parentVersionId === null) return null;
    current = await tx.query.modelVersions.findFirst({ where: eq(modelVersions.id, current.parentVersionId) });
  }
  return null;
}

function metadataOf(bytes: Uint8Array): Map<string, string> {
  const model = onnx.ModelProto.decode(bytes);
  return new Map((model.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? '']));
}

/** `image` is a preprocessing the caller gives for image models that have no bundle yet. */
export async function resolveBinding(tx: Tx, version: VersionRow, bytes: Uint8Array, image?: unknown): Promise<ModelBinding> {
  const inputs = version.inputs as TensorInfo[];
  const outputs = version.outputs as TensorInfo[];
  const found = await nearestDefinition(tx, version);
  const meta = metadataOf(bytes);
  const def = found?.def;
  const inputName = (def && 'input' in def.preprocess ? def.preprocess.input : undefined) ?? inputs[0]?.name;
  const input = inputs.find((i) => i.name === inputName) ?? inputs[0];
  if (!input) throw Invalid('the model declares no input');
  const outputName = def?.postprocess.output ?? outputs[0]?.name;
  const width = outputs.find((o) => o.name === outputName)?.shape.at(-1);
  const labels = Array.isArray(def?.postprocess.labels) ? def.postprocess.labels : meta.get('flotilla.labels')?.split(',');
  // Outputs that are not class scores (a probability, named raw outputs) are compared as values.
  const task = def ? (def.postprocess.task === 'classification' ? 'classification' : 'regression') : typeof width === 'number' && width === 1 ? 'regression' : 'classification';
  const binding: ModelBinding = {
    task,
    inputName: input.name,
    outputName,
    sampleShape: input.shape.slice(1).map((d) => (typeof d === 'number' ? d : null)),
    modelInputs: inputs,
    classes: task === 'classification' ? labels : undefined,
    source: found ? `bundle ${found.bundleId}` : meta.size ? 'ONNX metadata' : 'model inputs and outputs',
  };
  if (def?.preprocess.type === 'tabular') binding.features = def.preprocess.features.map((f) => f.name);
  else if (meta.get('flotilla.features')) binding.features = meta.get('flotilla.features')!.split(',');
  if (image !== undefined) {
    const parsed = ImagePreprocess.safeParse({ input: input.name, ...(image as object) });
    if (!parsed.success) throw Invalid(`preprocess: ${parsed.error.issues[0].path.join('.')}: ${parsed.error.issues[0].message}`);
    binding.image = parsed.data;
    binding.source = 'request';
  } else if (def?.preprocess.type === 'image') binding.image = def.preprocess;
  else if (def?.preprocess.type === 'tensor') binding.tensor = def.preprocess;
  return binding;
}
