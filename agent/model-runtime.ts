// What the agent needs from the inference runtime, as one interface: the reconciler stages, smoke-
// tests, activates and discards models through it; the local API predicts through it; probation
// watches its outcomes. `engine-adapter.ts` implements it over `agent/runtime/` (worker-thread
// sessions), which keeps the reconciler testable and the runtime swappable.
import type { BundleDefinition } from '../firmware-bundles/definition.ts';
import type { SmokeRunner } from '../firmware-bundles/smoke.ts';

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
 * bytes (`image`: bytes, base64, or a list of them). The runtime validates the contents.
 */
export type PredictInput = { features: unknown } | { inputs: unknown } | { image: unknown };

export interface PredictOutput {
  outputs: Record<string, { dims: number[]; data: number[] }>;
  /** Per row: top-K `{ label, index, score }` (classification) or the values (regression); one row unwrapped. */
  predictions: unknown;
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
  predict(input: PredictInput): Promise<PredictOutput>;
  /** Subscribes to prediction outcomes; returns the unsubscribe function. */
  onOutcome(listener: (o: InferenceOutcome) => void): () => void;
}
