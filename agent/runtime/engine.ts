/**
 * InferenceEngine: a bundle's preprocessing + its model session + its postprocessing, served as one
 * unit. The update path stages a bundle (load + checks), smoke-tests it on the staged session,
 * activates it, and releases the previous one after probation; `predict()` serves requests.
 *
 * Swapping is atomic for the whole unit: a request takes the active bundle (spec, labels, session
 * and id/version together) when `predict()` is called, holds its session across the async
 * preprocessing, and answers with the bundle it ran on. Requests in flight during a swap finish on
 * the old bundle; none fail.
 *
 * @example
 * const engine = new InferenceEngine({ hostOptions: { poolSize: 1 } });
 * await engine.start();
 * const staged = await engine.stage({ bundle: { id: 'bnd_7', version: 3 }, modelPath, preprocess: def.preprocess, postprocess: def.postprocess, labels });
 * const smoke = await runSmokeVectors(engine.smokeRunner(staged), def.smoke.vectors, def.smoke.tolerance);
 * const previous = engine.activate(staged);
 * const r = await engine.predict({ features: { f0: 1.2, f1: 0.3 } });
 * r.predictions[0][0] // { label: 'high', index: 2, score: 0.91 }
 */
import type { Postprocess, Preprocess } from '../../firmware-bundles/definition.ts';
import type { SmokeRunner } from '../../firmware-bundles/smoke.ts';
import { RuntimeError } from './errors.ts';
import { tensorsFromJson } from './json-tensors.ts';
import { ModelHost, type ModelHandle, type ModelHostOptions } from './model-host.ts';
import { postprocess, type Prediction } from './postprocess.ts';
import { preprocessTensor, SessionStates } from './preprocess-tensor.ts';
import { audioFrames } from './audio-frames.ts';
import { resolveShape } from '../../firmware-bundles/tensor-spec.ts';
import type { TensorPreprocess } from '../../firmware-bundles/definition.ts';
import { tensorSpecProblem } from '../../firmware-bundles/tensor-spec.ts';
import { preprocessRequest, type ImagePixels, type PreprocessOptions, type RowQuality } from './preprocess.ts';
import type { HostTensor, TensorMeta } from './tensor.ts';
import type { Placement } from './thread-choice.ts';
import type { WorkerSessionOptions } from './worker-protocol.ts';

/** Which bundle answered: as given at staging. */
export interface BundleRef {
  id: string;
  version: string | number;
}

export interface BundleRuntimeSpec {
  bundle: BundleRef;
  modelPath: string;
  preprocess: Preprocess;
  postprocess: Postprocess;
  /** Resolved labels (the definition's labels file already read). */
  labels?: string[];
  /** The bundle's onnxruntime session options (definition `session`), on top of the host's. */
  sessionOptions?: WorkerSessionOptions;
}

/** A bundle loaded and checked; usable for smoke tests, `activate()` and `release()`. */
export interface StagedBundle {
  readonly bundle: Readonly<BundleRef>;
  readonly handle: ModelHandle;
  readonly preprocess: Preprocess;
  readonly postprocess: Postprocess;
  readonly labels?: readonly string[];
}

export interface PredictResult {
  outputs: Record<string, HostTensor>;
  /** Per row: the top-K classes (classification) or the values (regression). */
  predictions: Prediction[][];
  bundle: BundleRef;
  /** The request was a batch (a list of rows or images, or JSON tensors). */
  batch: boolean;
  /** From `predict()` to the answer, including preprocessing. */
  latencyMs: number;
  timings: { preprocessMs: number; inferMs: number; postprocessMs: number };
  /** Tabular: quality counts per row and the feature values (for the input statistics). */
  quality?: RowQuality[];
  features?: Float32Array;
  /** Image: the resized pixels (for the input statistics). */
  pixels?: ImagePixels[];
  /** Audio: per frame, the frame fed and the model's outputs (for the input statistics: one row per frame). */
  frames?: Array<{ inputs: Record<string, { data: Float32Array }>; outputs: Record<string, HostTensor> }>;
}

export interface InferenceEngineOptions extends PreprocessOptions {
  /** A host to own (started and stopped with the engine); otherwise one is made from `hostOptions`. */
  host?: ModelHost;
  hostOptions?: ModelHostOptions;
}

export class InferenceEngine {
  readonly host: ModelHost;
  private current: StagedBundle | undefined;
  /** Recurrent state of `tensor` bundles per caller session (see preprocess-tensor.ts). */
  readonly states = new SessionStates();

  constructor(private readonly options: InferenceEngineOptions = {}) {
    this.host = options.host ?? new ModelHost(options.hostOptions);
  }

  start(): Promise<void> {
    return this.host.start();
  }

  async stop(): Promise<void> {
    this.current = undefined;
    await this.host.stop();
  }

  get active(): StagedBundle | undefined {
    return this.current;
  }

  /**
   * Loads the bundle's model next to the active one and checks that its spec fits the model
   * (input name, rank, feature count or image size, output name, label count). Throws
   * MODEL_LOAD_FAILED or BUNDLE_MISMATCH; the active bundle is untouched either way.
   */
  async stage(spec: BundleRuntimeSpec): Promise<StagedBundle> {
    const handle = await this.host.load(spec.modelPath, spec.sessionOptions);
    try {
      checkBundle(spec, handle);
    } catch (err) {
      await this.host.release(handle);
      throw err;
    }
    return Object.freeze({ bundle: Object.freeze({ ...spec.bundle }), handle, preprocess: spec.preprocess, postprocess: spec.postprocess, labels: spec.labels && Object.freeze([...spec.labels]) });
  }

  /** Serves `staged` from now on (spec and session together); returns the bundle it replaced. */
  activate(staged: StagedBundle): StagedBundle | undefined {
    this.host.activate(staged.handle); // throws if the handle is gone: then nothing changed
    const previous = this.current;
    this.current = staged;
    this.states.retain(staged.bundle.id);
    return previous;
  }

  /** Where a bundle's model runs and why (undefined once released). */
  placement(staged: StagedBundle): Placement | undefined {
    return this.host.placement(staged.handle);
  }

  /** Frees a bundle's session once its requests are done (not the active one: HANDLE_ACTIVE). */
  release(staged: StagedBundle): Promise<void> {
    return this.host.release(staged.handle);
  }

  /**
   * Preprocess → infer → postprocess on the active bundle (or `options.staged`). Errors are
   * RuntimeErrors: INVALID_INPUT / INVALID_IMAGE for bad requests, NO_ACTIVE_MODEL, INFERENCE_FAILED,
   * WORKER_CRASHED.
   */
  async predict(request: unknown, options: { staged?: StagedBundle; session?: string } = {}): Promise<PredictResult> {
    const t0 = performance.now();
    const unit = options.staged ?? this.current;
    if (!unit) throw new RuntimeError('NO_ACTIVE_MODEL', 'no bundle is active');
    // Taken now, before any await: the session stays loaded for this request even if a swap
    // and a release happen while the image is being decoded.
    const unhold = this.host.hold(unit.handle);
    try {
      const spec = unit.preprocess;
      const session = spec.type === 'tensor' && spec.state.length > 0 ? options.session : undefined;
      if (spec.type === 'tensor' && request !== null && typeof request === 'object' && 'audio' in request) {
        return await this.predictAudio(unit, spec, (request as { audio: unknown }).audio, session, t0);
      }
      const carried = session === undefined ? undefined : this.states.get(unit.bundle.id, session);
      const pre = await preprocessRequest(spec, request, unit.handle.inputs, this.options, carried);
      const t1 = performance.now();
      // Rows and images the preprocessing stacked on dim 0 are independent: the worker may merge
      // them with other requests' (dynamic batching); raw tensors keep their own meaning of dim 0.
      const mergeable = spec.type !== 'tensor' && (pre.quality !== undefined || pre.pixels !== undefined);
      const outputs = await this.host.infer(pre.feeds, { handle: unit.handle, mergeable });
      const t2 = performance.now();
      if (session !== undefined && spec.type === 'tensor') {
        const next: Record<string, HostTensor> = {};
        for (const s of spec.state) if (outputs[s.output]) next[s.input] = outputs[s.output];
        this.states.set(unit.bundle.id, session, next);
      }
      const predictions = postprocess(outputs, unit.postprocess, unit.labels, pre.pixels);
      const t3 = performance.now();
      const shown = unit.postprocess.outputs;
      return {
        outputs: shown ? Object.fromEntries(Object.entries(outputs).filter(([name]) => shown.includes(name))) : outputs,
        predictions,
        bundle: { ...unit.bundle },
        // Raw tensors name their own batch axis; one row is answered as one prediction.
        batch: spec.type === 'tensor' ? predictions.length !== 1 : pre.batch,
        latencyMs: t3 - t0,
        timings: { preprocessMs: t1 - t0, inferMs: t2 - t1, postprocessMs: t3 - t2 },
        ...(pre.quality && { quality: pre.quality, features: pre.features }),
        ...(pre.pixels && { pixels: pre.pixels }),
      };
    } finally {
      unhold();
    }
  }

  /**
   * An audio request: frame after frame through the model, the state carried from each frame to the
   * next (and kept for the session); one prediction per frame, outputs stacked on a leading frame axis.
   */
  private async predictAudio(unit: StagedBundle, spec: TensorPreprocess, body: unknown, session: string | undefined, t0: number): Promise<PredictResult> {
    const frames = audioFrames(spec, body);
    const meta = unit.handle.inputs.find((m) => m.name === spec.audio!.input);
    const shape = resolveShape(meta?.shape ?? [], spec.dims);
    const dims = 'dims' in shape ? shape.dims : [frames[0].length];
    let carried = session === undefined ? undefined : this.states.get(unit.bundle.id, session);
    const t1 = performance.now();
    const perFrame: Array<Record<string, HostTensor>> = [];
    const predictions: Prediction[][] = [];
    for (const frame of frames) {
      const feeds = preprocessTensor(spec, { [spec.audio!.input]: { dims, data: frame } }, unit.handle.inputs, carried);
      const outputs = await this.host.infer(feeds, { handle: unit.handle });
      carried = {};
      for (const s of spec.state) if (outputs[s.output]) carried[s.input] = outputs[s.output];
      predictions.push(...postprocess(outputs, unit.postprocess, unit.labels));
      perFrame.push(outputs);
    }
    if (session !== undefined && carried) this.states.set(unit.bundle.id, session, carried);
    const t2 = performance.now();
    const shown = unit.postprocess.outputs;
    const stacked: Record<string, HostTensor> = {};
    for (const [name, first] of Object.entries(perFrame[0])) {
      if ((shown && !shown.includes(name)) || Array.isArray(first.data)) continue;
      const Ctor = first.data.constructor as new (n: number) => Exclude<HostTensor['data'], string[]>;
      const data = new Ctor(first.data.length * perFrame.length);
      perFrame.forEach((o, i) => (data as Float32Array).set(o[name].data as Float32Array, i * first.data.length));
      stacked[name] = { type: first.type, dims: [perFrame.length, ...first.dims], data };
    }
    const t3 = performance.now();
    const perFrameStats = frames.map((frame, i) => ({ inputs: { [spec.audio!.input]: { data: frame } }, outputs: perFrame[i] }));
    return { outputs: stacked, predictions, bundle: { ...unit.bundle }, batch: true, latencyMs: t3 - t0, timings: { preprocessMs: t1 - t0, inferMs: t2 - t1, postprocessMs: t3 - t2 }, frames: perFrameStats };
  }

  /**
   * A smoke runner (firmware-bundles/smoke.ts) on a staged bundle's own session: the vectors are
   * JSON tensors, checked and typed like `{ inputs }` requests.
   */
  smokeRunner(staged: StagedBundle): SmokeRunner {
    return async (feeds) => {
      const outputs = await this.host.infer(tensorsFromJson(feeds, staged.handle.inputs), { handle: staged.handle });
      const result: Awaited<ReturnType<SmokeRunner>> = {};
      for (const [name, t] of Object.entries(outputs)) {
        if (t.data instanceof BigInt64Array || t.data instanceof BigUint64Array) result[name] = { dims: t.dims, data: t.data };
        else if (!Array.isArray(t.data)) result[name] = { dims: t.dims, data: t.data };
      }
      return result;
    };
  }
}

/** The bundle spec against the model's declared inputs and outputs. */
export function checkBundle(spec: Pick<BundleRuntimeSpec, 'preprocess' | 'postprocess' | 'labels'>, model: Pick<ModelHandle, 'inputs' | 'outputs'>): void {
  const mismatch = (msg: string) => new RuntimeError('BUNDLE_MISMATCH', msg);
  const pre = spec.preprocess;
  const post = spec.postprocess;
  const detection = post.task === 'detection' ? [post.detection?.boxes, post.detection?.scores] : [];
  if (detection.some((name) => name === undefined)) throw mismatch('postprocess task "detection" needs "detection": { "boxes", "scores" } naming the model\'s outputs');
  for (const name of [...(post.outputs ?? []), ...(post.output ? [post.output] : []), ...(detection as string[])]) {
    if (!model.outputs.some((m) => m.name === name)) throw mismatch(`postprocess output "${name}" is not an output of the model (outputs: ${model.outputs.map((m) => m.name).join(', ')})`);
  }
  if (pre.type === 'tensor') {
    const problem = tensorSpecProblem(pre, model.inputs, model.outputs.map((m) => m.name));
    if (problem) throw mismatch(problem.message);
    return;
  }
  const input = model.inputs.find((m) => m.name === pre.input);
  if (!input) throw mismatch(`preprocess.input "${pre.input}" is not an input of the model (inputs: ${model.inputs.map((m) => m.name).join(', ')})`);
  const others = model.inputs.filter((m) => m !== input).map((m) => m.name);
  if (others.length > 0) throw mismatch(`the model has inputs the preprocessing does not feed: ${others.join(', ')}`);
  if (!input.isTensor || !input.type || input.type === 'string' || input.type === 'bool') throw mismatch(`input "${input.name}" must be a numeric tensor, it is ${input.type ?? 'not a tensor'}`);
  const shape = input.shape ?? [];
  const fixed = (i: number) => (typeof shape[i] === 'number' ? (shape[i] as number) : undefined);
  const expect = (what: string, i: number, want: number) => {
    const got = fixed(i);
    if (got !== undefined && got !== want) throw mismatch(`${what}: the spec gives ${want}, the model's input "${input.name}" [${shape.join(', ')}] has ${got}`);
  };
  if (pre.type === 'tabular') {
    if (shape.length !== 2) throw mismatch(`a tabular model takes a [batch, features] input; "${input.name}" is [${shape.join(', ')}]`);
    expect('feature count', 1, pre.features.length);
  } else {
    if (shape.length !== 4) throw mismatch(`an image model takes a rank-4 input; "${input.name}" is [${shape.join(', ')}]`);
    const c = pre.channels === 'gray' ? 1 : 3;
    const [ci, hi, wi] = pre.layout === 'NCHW' ? [1, 2, 3] : [3, 1, 2];
    expect('channels', ci, c);
    expect('height', hi, pre.height);
    expect('width', wi, pre.width);
  }
  const out: TensorMeta | undefined = post.output ? model.outputs.find((m) => m.name === post.output) : model.outputs[0];
  if (!out) throw mismatch(`postprocess.output "${post.output}" is not an output of the model (outputs: ${model.outputs.map((m) => m.name).join(', ')})`);
  const last = out.shape?.[out.shape.length - 1];
  if (spec.labels && post.task === 'classification' && typeof last === 'number' && (out.shape?.length ?? 0) >= 2 && last !== spec.labels.length) {
    throw mismatch(`${spec.labels.length} labels for ${last} classes in output "${out.name}"`);
  }
}
