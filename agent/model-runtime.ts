// What the agent needs from the inference runtime, as one interface: the reconciler stages, smoke-
// tests, activates and discards models through it; the local API predicts through it; probation
// watches its outcomes. `engine-adapter.ts` implements it over `agent/runtime/` (worker-thread
// sessions), which keeps the reconciler testable and the runtime swappable.
import type { BundleDefinition } from '../firmware-bundles/definition.ts';
import type { SmokeRunner } from '../firmware-bundles/smoke.ts';
import type { WorkerSessionOptions } from './runtime/worker-protocol.ts';
import type { Placement } from './runtime/thread-choice.ts';

/** Which bundle a model came from (what `reported.active` and the API answer carry). */
export interface BundleInfo {
  id: string;
  name: string;
  model: { name: string; version: number };
  counter: number;
  modelSha256: string;
}

/** A model loaded next to the active one, not serving yet. */
export interface StagedModel {
  readonly info: BundleInfo;
  /** Runs raw tensors (smoke vectors) on this very session. */
  readonly run: SmokeRunner;
}

/**
 * One local prediction request: tabular rows (`features`), JSON tensors (`inputs`), or encoded image
 * bytes (`image`: bytes, base64, or a list of them). The runtime validates the contents. The caller's
 * `predictionId` (optional) goes with a captured sample, so labels fed back later find it.
 */
export type PredictInput = ({ features: unknown } | { inputs: unknown } | { image: unknown } | { audio: unknown }) & {
  predictionId?: string;
  /** Stateful `tensor` bundles: the caller's session, whose state the agent carries between calls. */
  session?: string;
};

export interface PredictOutput {
  outputs: Record<string, { dims: number[]; data: number[] }>;
  /**
   * One entry per item of the request — a feature row, an image, a tensor batch item, an audio
   * frame — each with its top-K `{ label, index, score }` (classification) or values (regression).
   * The same shape for every input kind and batch size.
   */
  results: Array<{ predictions: unknown[] }>;
  /** The request was a batch (a list of rows or images, a tensor batch > 1, audio frames). */
  batch: boolean;
  /** Kept for clients written before `results`: the one item's list for a single input, every item's for a batch. */
  predictions: unknown;
  /** Detection bundles: the same as `predictions`, each `{ box: [x1, y1, x2, y2], score, label, index }` in the original image's pixels. */
  detections?: unknown;
  bundle: BundleInfo;
  /** Time inside the runtime (preprocess + inference + postprocess). */
  latencyMs: number;
}

/** Outcome of one prediction, for probation (bad input is the caller's fault and not counted as an error). */
export interface InferenceOutcome {
  counter: number;
  ok: boolean;
  code?: string;
}

/**
 * One finished request (success or failure), for telemetry, input statistics and sample capture.
 * Delivered synchronously on the request path: listeners must only enqueue (O(1)), never compute.
 */
export interface PredictionEvent {
  /** The bundle the request ran on. */
  bundle: BundleInfo;
  ok: boolean;
  /** Failure reason code (RuntimeError code, e.g. INVALID_INPUT, INFERENCE_FAILED). */
  code?: string;
  /** Time in the runtime, from the call to the answer. */
  latencyMs: number;
  /** The request as given (the parsed JSON or the image bytes; not to be mutated). */
  input: PredictInput;
  /** Successful requests: the answer, and per row/image the predictions and the decoded pixels. */
  output?: PredictOutput;
  rows?: ReadonlyArray<ReadonlyArray<{ label: string; index: number; score: number; box?: readonly number[] }>>;
  pixels?: ReadonlyArray<{ data: Uint8Array; width: number; height: number; channels: 1 | 3 }>;
  /** Audio requests: per frame, the frame fed (by input name) and the model's outputs. */
  frames?: ReadonlyArray<{ inputs: Readonly<Record<string, unknown>>; outputs: Readonly<Record<string, { data: ArrayLike<number | bigint | boolean> }>> }>;
}

export interface ModelRuntime {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Loads a model next to the active one. Throws RuntimeError MODEL_LOAD_FAILED / BUNDLE_MISMATCH. */
  stage(modelPath: string, definition: BundleDefinition, info: BundleInfo): Promise<StagedModel>;
  /** Makes a staged model the one serving; requests in flight finish on the old one, which is then released. */
  activate(staged: StagedModel): Promise<void>;
  /** Releases a staged model that will not be activated. */
  discard(staged: StagedModel): Promise<void>;
  active(): BundleInfo | null;
  /** The onnxruntime options the active bundle runs with (absent in runtimes without onnxruntime). */
  activeSessionOptions?(): Readonly<WorkerSessionOptions> | null;
  /** Which thread the active model runs on and why (absent in runtimes without onnxruntime). */
  activePlacement?(): Placement | null;
  predict(input: PredictInput): Promise<PredictOutput>;
  /** Subscribes to prediction outcomes; returns the unsubscribe function. */
  onOutcome(listener: (o: InferenceOutcome) => void): () => void;
  /** Subscribes to every finished request (see PredictionEvent); returns the unsubscribe function. */
  onPrediction(listener: (e: PredictionEvent) => void): () => void;
  /** The active model now answers as `info` (a re-signed manifest for the very same files: new counter). */
  relabel(info: BundleInfo): void;
  /** Requests issued to the inference workers and not answered yet. */
  queueDepth(): number;
}
