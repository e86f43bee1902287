/**
 * Builds a bundle from a definition and a model: checks that the definition fits the model, inlines
 * the labels, records smoke vectors with onnxruntime, and returns the content-addressed files
 * (`model.onnx`, `bundle.json`) that a manifest then names by sha256 and size.
 *
 * Every mismatch is caught here, at build time on the server, with a code the API can map to a 4xx,
 * instead of on a device in the field.
 *
 * @example
 * const { files, resolved } = await buildBundle({ definition, modelBytes, labels });
 * for (const f of files) await artifacts.put(f.bytes); // content-addressed by f.sha256
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { canonicalBytes } from './canonical-json.ts';
import { BundleDefinition, type Preprocess, type SingleInputPreprocess, type SmokeVector } from './definition.ts';
import { issuesLine, withoutUndefined } from './envelope.ts';
import { createOrtRunner } from './ort-runner.ts';
import { channelCount, inputDims, perChannel, seededInput, type InputTensorType } from './seeded-inputs.ts';
import { seededTensorVectors } from './seeded-tensors.ts';
import { deviceSessionOptions } from './bundle-session.ts';
import { PLAIN_SESSION_OPTIONS } from './session-options.ts';
import { encodeSmokeFile, smokeValueCount } from './smoke-file.ts';
import { compareOutputs, runSmokeVectors } from './smoke.ts';
import { tensorSpecProblem } from './tensor-spec.ts';

/** Codes of `BundleBuildError`. */
export type BundleBuildErrorCode =
  | 'INVALID_DEFINITION'
  | 'INVALID_MODEL'
  | 'INPUT_NOT_IN_MODEL'
  | 'INPUT_SHAPE_MISMATCH'
  | 'UNRESOLVED_DIM'
  | 'UNSUPPORTED_INPUT_TYPE'
  | 'UNFED_MODEL_INPUT'
  | 'OUTPUT_NOT_IN_MODEL'
  | 'OUTPUT_SHAPE_MISMATCH'
  | 'LABELS_MISSING'
  | 'LABELS_MISMATCH'
  | 'NON_FINITE_OUTPUT'
  | 'NON_TENSOR_OUTPUT'
  | 'MODEL_RUN_FAILED'
  | 'SMOKE_FAILED';

/**
 * Why a bundle could not be built; `code` is stable (the API maps it to a 422), `message` says what to fix.
 *
 * @example
 * try { await buildBundle(input); } catch (e) { if (e instanceof BundleBuildError && e.code === 'INPUT_NOT_IN_MODEL') ... }
 */
export class BundleBuildError extends Error {
  constructor(
    readonly code: BundleBuildErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'BundleBuildError';
  }
}

/** A bundle file: bytes plus the content address the manifest signs. */
export interface BundleFile {
  /** `model.onnx`, `bundle.json`, `smoke.bin`, or an external data file the model names (shipped beside it). */
  path: string;
  bytes: Uint8Array;
  sha256: string;
  size: number;
}

/** What `buildBundle` needs: a parsed definition, the ONNX bytes, and the labels file's lines. */
export interface BuildBundleInput {
  definition: BundleDefinition;
  modelBytes: Uint8Array;
  /** Labels read from the definition's labels file; overrides inline labels. */
  labels?: string[];
  /** Seed of the generated smoke inputs (vector i uses seed + i). */
  seed?: number;
  /** ONNX external data files the model's tensors name (plain file names, loaded from beside model.onnx). */
  externalFiles?: Array<{ path: string; bytes: Uint8Array }>;
}

/** What `buildBundle` returns. */
export interface BuiltBundle {
  files: BundleFile[];
  /** The definition as shipped: labels inlined, output named, smoke vectors filled in. */
  resolved: BundleDefinition;
}

const DEFAULT_SEED = 0x5eed;
/** Smoke vectors with more values than this go to `smoke.bin` (a 32×32 RGB image has 3,072). */
export const SMOKE_INLINE_MAX_VALUES = 4096;
/**
 * The recorded tolerance is at least this multiple of the difference measured between the device's
 * session options and a plain session: another CPU's kernels differ from the server's by about as
 * much as two kernel choices on one CPU do, and the margin keeps a correct device from failing.
 */
const MEASURED_MARGIN = 4;
const SUPPORTED_INPUT_TYPES: ReadonlySet<string> = new Set<InputTensorType>(['float32', 'float64', 'int32', 'int64']);

/**
 * Builds a bundle. Throws BundleBuildError when the definition does not fit the model.
 *
 * @example
 * const definition = BundleDefinition.parse(JSON.parse(await readFile('firmware-bundles/tabular-demo/bundle.json', 'utf8')));
 * const built = await buildBundle({ definition, modelBytes: await readFile('model.onnx'), labels: ['low', 'medium', 'high'] });
 * built.files.map((f) => [f.path, f.sha256, f.size]);
 */
export async function buildBundle(input: BuildBundleInput): Promise<BuiltBundle> {
  const parsed = BundleDefinition.safeParse(input.definition);
  if (!parsed.success) throw new BundleBuildError('INVALID_DEFINITION', issuesLine(parsed.error));
  const def = parsed.data;
  checkImageParams(def.preprocess);

  const model = await modelSource(input.modelBytes, input.externalFiles ?? []);
  try {
    return await build(input, def, model.source);
  } finally {
    await model.cleanup();
  }
}

async function build(input: BuildBundleInput, def: BundleDefinition, source: Uint8Array | string): Promise<BuiltBundle> {
  let session: ort.InferenceSession;
  try {
    // Exactly the options the agent runs the bundle with: outputs are recorded as the device computes them.
    // The log level only changes what the device logs: the server's build stays quiet.
    const { logSeverityLevel: _deviceLogs, ...options } = deviceSessionOptions(def.session);
    session = await openSession(source, options);
  } catch (err) {
    throw new BundleBuildError('INVALID_MODEL', `onnxruntime cannot load the model: ${(err as Error).message}`);
  }
  try {
    checkTensorOutputs(session);
    const inputType = checkInput(session, def.preprocess);
    const output = checkOutput(session, def.postprocess.output);
    for (const name of def.postprocess.outputs ?? []) checkOutput(session, name);
    const labels = resolveLabels(def, input.labels);
    if (labels && def.postprocess.task === 'classification') checkLabelCount(session, output, labels.length);
    if (def.postprocess.task === 'detection') checkDetection(session, def, labels);
    if (labels && def.postprocess.task === 'binary' && labels.length !== 2) throw new BundleBuildError('LABELS_MISMATCH', `a binary postprocess takes 2 labels (below, at or above the threshold), ${labels.length} are given`);

    const runner = failsAsBuildError(createOrtRunner(session));
    let vectors: SmokeVector[];
    if (def.smoke.vectors.length > 0) {
      // Hand-written vectors must hold on this very model, or the bundle would fail on every device.
      const check = await runSmokeVectors(runner, def.smoke.vectors, def.smoke.tolerance);
      if (!check.ok) throw new BundleBuildError('SMOKE_FAILED', `given smoke vectors fail on this model: ${check.failures[0].message}`);
      vectors = def.smoke.vectors;
    } else if (def.preprocess.type === 'tensor') {
      vectors = await seededTensorVectors(runner, def.preprocess, session.inputMetadata as never, def.smoke.generate, input.seed ?? DEFAULT_SEED);
      checkFinite(vectors);
    } else {
      vectors = await generateVectors(runner, def, inputType!, input.seed ?? DEFAULT_SEED);
    }
    const measured = await measureDrift(source, vectors);
    const tolerance = Math.max(def.smoke.tolerance, ceilSignificant(MEASURED_MARGIN * measured));

    const files = [bundleFile('model.onnx', input.modelBytes), ...(input.externalFiles ?? []).map((f) => bundleFile(f.path, f.bytes))];
    // A definition rebuilt from a shipped one (a variant's, a retrained version's) drops the old file.
    let smoke: BundleDefinition['smoke'] = { ...def.smoke, file: undefined, tolerance, vectors, measured: { maxAbsDiff: measured, against: 'plain session (graph optimizations off, QDQ as written)' } };
    if (smokeValueCount(vectors) > SMOKE_INLINE_MAX_VALUES) {
      const file = bundleFile('smoke.bin', encodeSmokeFile(vectors));
      files.push(file);
      smoke = { ...smoke, vectors: [], file: { path: 'smoke.bin', sha256: file.sha256, size: file.size } };
    }
    const resolved: BundleDefinition = withoutUndefined({
      ...def,
      postprocess: { ...def.postprocess, output, labels },
      smoke,
    });
    files.push(bundleFile('bundle.json', canonicalBytes(resolved)));
    return { files, resolved };
  } finally {
    await session.release();
  }
}

/**
 * Largest output difference between the recorded outputs and a plain session on the same inputs: how
 * far one CPU's choice of kernels moves this model (large for quantized graphs, tiny for float ones).
 */
async function measureDrift(source: Uint8Array | string, vectors: readonly SmokeVector[]): Promise<number> {
  if (vectors.length === 0) return 0;
  const plain = await openSession(source, PLAIN_SESSION_OPTIONS);
  try {
    const run = createOrtRunner(plain);
    let worst = 0;
    for (const v of vectors) worst = Math.max(worst, compareOutputs(v.expected, await run(v.inputs), Infinity).maxAbsDiff);
    return Number.isFinite(worst) ? worst : 0;
  } finally {
    await plain.release();
  }
}

/**
 * What onnxruntime loads: the bytes, or — when weights live in external data files — a model.onnx in a
 * temporary folder with its data files beside it, as the agent's bundle folder has them (onnxruntime-node
 * resolves external data relative to the model's path; from bytes it has no folder to look in).
 */
async function modelSource(modelBytes: Uint8Array, externalFiles: ReadonlyArray<{ path: string; bytes: Uint8Array }>): Promise<{ source: Uint8Array | string; cleanup: () => Promise<void> }> {
  if (externalFiles.length === 0) return { source: modelBytes, cleanup: async () => {} };
  const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-bundle-'));
  await writeFile(path.join(dir, 'model.onnx'), modelBytes);
  for (const f of externalFiles) await writeFile(path.join(dir, path.basename(f.path)), f.bytes);
  return { source: path.join(dir, 'model.onnx'), cleanup: () => rm(dir, { recursive: true, force: true }) };
}

function openSession(source: Uint8Array | string, options: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession> {
  return typeof source === 'string' ? ort.InferenceSession.create(source, options) : ort.InferenceSession.create(source, options);
}

/** Rounds up to two significant digits, so the recorded tolerance reads well and still covers `x`. */
function ceilSignificant(x: number): number {
  if (x <= 0) return 0;
  const scale = 10 ** (Math.floor(Math.log10(x)) - 1);
  return Math.ceil(x / scale) * scale;
}

/**
 * onnxruntime-node returns tensors only: a model with a sequence or map output loads but every run
 * fails, so it is refused here, naming the output and how to export it as a tensor.
 */
function checkTensorOutputs(session: ort.InferenceSession): void {
  const bad = session.outputMetadata.filter((m) => !m.isTensor);
  if (bad.length === 0) return;
  const names = bad.map((m) => `"${m.name}"`).join(', ');
  throw new BundleBuildError(
    'NON_TENSOR_OUTPUT',
    `output ${names} is not a tensor (a sequence or map, e.g. from ZipMap), and onnxruntime-node answers tensors only. ` +
      `For scikit-learn classifiers export with skl2onnx option options={id(model): {'zipmap': False}}, or push the file again: the registry now replaces ZipMap with the probability tensor. ` +
      'Other models: export every output as a tensor.',
  );
}

/** A run that fails inside onnxruntime (an op without a kernel, a shape error) is the model's problem: a 422, not a 500. */
function failsAsBuildError(run: ReturnType<typeof createOrtRunner>): ReturnType<typeof createOrtRunner> {
  return async (feeds) => {
    try {
      return await run(feeds);
    } catch (err) {
      if (err instanceof BundleBuildError) throw err;
      throw new BundleBuildError('MODEL_RUN_FAILED', `onnxruntime cannot run the model on generated inputs: ${(err as Error).message}`);
    }
  };
}

function checkFinite(vectors: readonly SmokeVector[]): void {
  vectors.forEach((v, i) => {
    for (const [name, t] of Object.entries(v.expected)) {
      if (!t.data.every(Number.isFinite)) throw new BundleBuildError('NON_FINITE_OUTPUT', `output ${name} is not finite on generated input ${i}`);
    }
  });
}

async function generateVectors(runner: ReturnType<typeof createOrtRunner>, def: BundleDefinition, inputType: InputTensorType, seed: number): Promise<SmokeVector[]> {
  const vectors: SmokeVector[] = [];
  for (let i = 0; i < def.smoke.generate; i++) {
    const pre = def.preprocess as SingleInputPreprocess;
    const inputs = { [pre.input]: seededInput(pre, { seed: seed + i, tensorType: inputType, bins: def.reference.bins }) };
    const outputs = await runner(inputs);
    const expected: SmokeVector['expected'] = {};
    for (const [name, t] of Object.entries(outputs)) {
      const data = Array.from(t.data as ArrayLike<number>, Number);
      if (!data.every(Number.isFinite)) throw new BundleBuildError('NON_FINITE_OUTPUT', `output ${name} is not finite on generated input ${i}`);
      expected[name] = { dims: [...t.dims], data };
    }
    vectors.push({ inputs, expected });
  }
  return vectors;
}

function checkImageParams(pre: Preprocess): void {
  if (pre.type !== 'image') return;
  try {
    perChannel(pre.mean, channelCount(pre), 'mean');
    perChannel(pre.std, channelCount(pre), 'std');
  } catch (err) {
    throw new BundleBuildError('INVALID_DEFINITION', `preprocess: ${(err as Error).message}`);
  }
}

function checkInput(session: ort.InferenceSession, pre: Preprocess): InputTensorType | undefined {
  if (pre.type === 'tensor') {
    const problem = tensorSpecProblem(pre, session.inputMetadata as never, session.outputNames);
    if (problem) throw new BundleBuildError(problem.code, problem.message);
    return undefined;
  }
  const meta = session.inputMetadata.find((m) => m.name === pre.input);
  if (!meta) {
    throw new BundleBuildError('INPUT_NOT_IN_MODEL', `preprocess.input "${pre.input}" is not an input of the model (inputs: ${session.inputNames.join(', ')})`);
  }
  // The agent feeds exactly one tensor; any other required input would make every call fail.
  const others = session.inputNames.filter((n) => n !== pre.input);
  if (others.length > 0) throw new BundleBuildError('UNFED_MODEL_INPUT', `the model also needs inputs the preprocess does not produce: ${others.join(', ')}`);
  if (!meta.isTensor || !SUPPORTED_INPUT_TYPES.has(meta.type) || (pre.type === 'image' && meta.type !== 'float32')) {
    const type = meta.isTensor ? meta.type : 'non-tensor';
    throw new BundleBuildError('UNSUPPORTED_INPUT_TYPE', `input "${pre.input}" is ${type}; ${pre.type} preprocessing produces ${pre.type === 'image' ? 'float32' : 'float32/float64/int32/int64'}`);
  }
  const want = inputDims(pre);
  const have = meta.shape;
  // An empty shape means the model does not declare one: nothing to check against.
  if (have.length > 0) {
    const fits = have.length === want.length && have.every((d, i) => typeof d !== 'number' || d < 0 || d === want[i]);
    if (!fits) {
      throw new BundleBuildError('INPUT_SHAPE_MISMATCH', `input "${pre.input}" has shape [${have.join(', ')}], the ${pre.type} preprocess produces [${describeDims(pre)}]`);
    }
  }
  return meta.type as InputTensorType;
}

function describeDims(pre: SingleInputPreprocess): string {
  if (pre.type === 'tabular') return `batch, ${pre.features.length}`;
  const c = channelCount(pre);
  return pre.layout === 'NCHW' ? `batch, ${c}, ${pre.height}, ${pre.width}` : `batch, ${pre.height}, ${pre.width}, ${c}`;
}

function checkOutput(session: ort.InferenceSession, output: string | undefined): string {
  if (output === undefined) return session.outputNames[0];
  if (!session.outputNames.includes(output)) {
    throw new BundleBuildError('OUTPUT_NOT_IN_MODEL', `postprocess.output "${output}" is not an output of the model (outputs: ${session.outputNames.join(', ')})`);
  }
  return output;
}

/**
 * A detection postprocess needs a letterboxed image (its boxes are mapped back through it) and two
 * outputs: boxes [batch, N, 4] and class scores [batch, N, C] (C = the labels, when given).
 */
function checkDetection(session: ort.InferenceSession, def: BundleDefinition, labels: string[] | undefined): void {
  const outputs = session.outputNames.join(', ');
  const det = def.postprocess.detection;
  if (!det) throw new BundleBuildError('INVALID_DEFINITION', `postprocess task "detection" needs "detection": { "boxes": …, "scores": … } naming the model's box and score outputs (outputs: ${outputs})`);
  if (def.preprocess.type !== 'image' || def.preprocess.fit !== 'letterbox') {
    throw new BundleBuildError('INVALID_DEFINITION', 'postprocess task "detection" maps boxes back to the original image through the letterbox: set preprocess to an image one with "fit": "letterbox"');
  }
  const shapeOf = (role: 'boxes' | 'scores') => {
    const name = det[role];
    const meta = session.outputMetadata.find((m) => m.name === name);
    if (!meta) throw new BundleBuildError('OUTPUT_NOT_IN_MODEL', `postprocess.detection.${role} "${name}" is not an output of the model (outputs: ${outputs})`);
    const shape = meta.isTensor ? meta.shape : [];
    if (shape.length !== 3) throw new BundleBuildError('OUTPUT_SHAPE_MISMATCH', `postprocess.detection.${role} "${name}" is [${shape.join(', ')}]; a detection postprocess takes ${role === 'boxes' ? '[batch, boxes, 4]' : '[batch, boxes, classes]'}`);
    return shape;
  };
  const boxes = shapeOf('boxes');
  const scores = shapeOf('scores');
  if (typeof boxes[2] === 'number' && boxes[2] !== 4) throw new BundleBuildError('OUTPUT_SHAPE_MISMATCH', `postprocess.detection.boxes "${det.boxes}" is [${boxes.join(', ')}]: its last dim must be 4 (${det.format})`);
  if (labels && typeof scores[2] === 'number' && scores[2] !== labels.length) {
    throw new BundleBuildError('LABELS_MISMATCH', `postprocess.detection.scores "${det.scores}" has ${scores[2]} classes but ${labels.length} labels are given`);
  }
}

function resolveLabels(def: BundleDefinition, given: string[] | undefined): string[] | undefined {
  const declared = def.postprocess.labels;
  if (given !== undefined) return given;
  if (typeof declared === 'string') throw new BundleBuildError('LABELS_MISSING', `postprocess.labels names the file "${declared}"; pass its lines as labels`);
  return declared;
}

function checkLabelCount(session: ort.InferenceSession, output: string, count: number): void {
  const meta = session.outputMetadata.find((m) => m.name === output);
  const last = meta?.isTensor ? meta.shape[meta.shape.length - 1] : undefined;
  if (typeof last === 'number' && last > 0 && last !== count) {
    throw new BundleBuildError('LABELS_MISMATCH', `output "${output}" has ${last} classes but ${count} labels are given`);
  }
}

function bundleFile(path: BundleFile['path'], bytes: Uint8Array): BundleFile {
  return { path, bytes, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.byteLength };
}
