// A loaded dataset as the optimizer's EvalDataset for one model: tabular feature columns in the
// model's order, or images decoded and normalised the way the agent does (sharp: resize, colour
// space, (pixel / scale − mean) / std, NCHW or NHWC); labels mapped to class indices by name.
import { readFile } from 'node:fs/promises';
import type { ImagePreprocess, TensorPreprocess } from '../../firmware-bundles/definition.ts';
import { decodeImagePixels } from '../../firmware-bundles/image-pixels.ts';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import { Invalid } from '../errors.ts';
import type { EvalDataset } from '../optimize/evaluate.ts';
import type { LoadedDataset } from './dataset-service.ts';
import type { TensorInfo } from '../onnx/inspect.ts';
import type { CellValue } from './formats.ts';
import { tensorEvalDataset } from './tensor-eval.ts';

/** How a model reads a dataset: what its input and output mean. */
export interface ModelBinding {
  task: 'classification' | 'regression';
  inputName: string;
  outputName?: string;
  /** Per-sample input shape as the model declares it (null = symbolic). */
  sampleShape: Array<number | null>;
  /** Tabular: feature columns in input order; default the dataset's feature columns in file order. */
  features?: string[];
  /** Class names by index; labels are matched against them (else integer labels are indices). */
  classes?: string[];
  /** Images: the preprocessing the bundle ships. */
  image?: Omit<ImagePreprocess, 'input'>;
  /** Every input the model declares (several inputs are fed by name, tensor-eval.ts). */
  modelInputs: TensorInfo[];
  /** Tensor models: the definition's pinned inputs, carried state, symbolic dims and ranges. */
  tensor?: TensorPreprocess;
  /** Where the binding came from, for the report. */
  source: string;
}

export interface EvalDatasetOptions {
  /** Use at most this many rows (the first ones), so evaluation stays bounded. */
  maxSamples: number;
}

function labelIndex(v: CellValue, classes: string[] | undefined, row: number): number {
  if (v === null) throw Invalid(`row ${row + 1} has no label; evaluation needs a label on every row`);
  if (classes) {
    const i = classes.indexOf(String(v));
    if (i >= 0) return i;
  }
  const n = typeof v === 'number' ? v : Number(v);
  if (Number.isInteger(n) && n >= 0 && (!classes || n < classes.length)) return n;
  throw Invalid(`row ${row + 1}: label ${JSON.stringify(v)} is not a class of the model${classes ? ` (classes: ${classes.join(', ')})` : ' (it names no classes: use class indices 0, 1, …)'}`);
}

export async function toEvalDataset(data: LoadedDataset, binding: ModelBinding, store: ArtifactStore, opts: EvalDatasetOptions): Promise<EvalDataset & { truncatedFrom?: number }> {
  if (data.tensors) return tensorEvalDataset(data.tensors, binding, opts.maxSamples);
  if (binding.modelInputs.length > 1) {
    throw Invalid(`the model takes ${binding.modelInputs.length} inputs (${binding.modelInputs.map((m) => m.name).join(', ')}); ${data.version.ref} is ${data.version.kind}: push a tensor dataset (.npz with one array per input, or JSON lines of named tensors with --format tensors)`);
  }
  const n = Math.min(data.rows.length, opts.maxSamples);
  const rows = data.rows.slice(0, n);
  const labelCol = data.columns.find((c) => c.role === 'label')?.name;
  const groupCols = data.columns.filter((c) => c.role === 'group').map((c) => c.name);
  let labels: ArrayLike<number> | undefined;
  if (labelCol) {
    labels =
      binding.task === 'classification'
        ? Int32Array.from(rows, (r, i) => labelIndex(r[labelCol], binding.classes, i))
        : Float64Array.from(rows, (r, i) => {
            const v = r[labelCol];
            if (typeof v !== 'number') throw Invalid(`row ${i + 1}: the regression target "${labelCol}" must be a number`);
            return v;
          });
  }
  const groups = groupCols.length ? Object.fromEntries(groupCols.map((g) => [g, rows.map((r) => (r[g] === null || r[g] === undefined ? '' : String(r[g])))])) : undefined;
  const common = {
    task: binding.task,
    labels,
    groups,
    inputName: binding.inputName,
    outputName: binding.outputName,
    ...(data.rows.length > n ? { truncatedFrom: data.rows.length } : {}),
  };

  if (data.version.kind === 'images') {
    const spec = binding.image;
    if (!spec) {
      throw Invalid(`no image preprocessing is known for this model: build a bundle for it (or an ancestor) first, or pass "preprocess" with the request`);
    }
    const { inputs, sampleShape } = await imageEvalInputs(spec, n, async (i) => readFile(store.pathOf(data.images![i].sha256)));
    return { ...common, inputs, sampleShape };
  }

  const featureCols = data.columns.filter((col) => col.role === 'feature');
  const features = binding.features ?? featureCols.map((col) => col.name);
  const declared = binding.sampleShape.length === 1 ? binding.sampleShape[0] : null;
  if (binding.sampleShape.length > 1) throw Invalid(`the model takes samples of shape [${binding.sampleShape.map((d) => d ?? '?')}]; a tabular dataset gives one row of features per sample`);
  if (declared !== null && declared !== features.length) {
    throw Invalid(`the model takes ${declared} features per row, the dataset has ${features.length} feature columns (${features.join(', ')}); mark the others with --group/--id or name the features in a bundle definition`);
  }
  for (const f of features) {
    const col = data.columns.find((x) => x.name === f);
    if (!col) throw Invalid(`the model reads feature "${f}", which is not a column of ${data.version.ref}`);
    if (col.type !== 'numeric') throw Invalid(`feature column "${f}" is not numeric; the model takes float inputs`);
  }
  const D = features.length;
  const inputs = new Float32Array(n * D);
  rows.forEach((r, i) =>
    features.forEach((f, j) => {
      const v = r[f];
      inputs[i * D + j] = typeof v === 'number' ? v : NaN;
    }),
  );
  return { ...common, inputs, sampleShape: [D], featureNames: features };
}

/** n encoded images as one normalised input tensor, decoded the way the agent does (shared with captured image samples). */
export async function imageEvalInputs(spec: Omit<ImagePreprocess, 'input'>, n: number, read: (i: number) => Promise<Uint8Array>): Promise<{ inputs: Float32Array; sampleShape: number[] }> {
  const c = spec.channels === 'gray' ? 1 : 3;
  const per = c * spec.width * spec.height;
  const inputs = new Float32Array(n * per);
  const order = spec.channels === 'bgr' ? [2, 1, 0] : [0, 1, 2];
  const HW = spec.width * spec.height;
  for (let i = 0; i < n; i++) {
    // The same decode as the agent's preprocessing and the image reference profiles.
    const raw = (await decodeImagePixels(spec, await read(i))).data;
    for (let p = 0; p < HW; p++) {
      for (let k = 0; k < c; k++) {
        const v = (raw[p * c + order[k]] / spec.scale - spec.mean[k]) / spec.std[k];
        inputs[i * per + (spec.layout === 'NCHW' ? k * HW + p : p * c + k)] = v;
      }
    }
  }
  return { inputs, sampleShape: spec.layout === 'NCHW' ? [c, spec.height, spec.width] : [spec.height, spec.width, c] };
}
