// ModelRuntime over the runtime's InferenceEngine (agent/runtime/engine.ts): sessions in a worker
// thread, bundles staged beside the active one, atomic swaps. This adapter adds what the agent needs
// on top: the bundle identity (counter, model hash) carried with each staged model, release of the
// replaced session once its in-flight requests are done, JSON-ready outputs, and the inference
// outcomes probation watches.
import type { Logger } from 'pino';
import type { BundleDefinition } from '../firmware-bundles/definition.ts';
import { InferenceEngine, type StagedBundle } from './runtime/engine.ts';
import { RuntimeError } from './runtime/errors.ts';
import type { HostEvent, ModelHostOptions } from './runtime/model-host.ts';
import type { Placement } from './runtime/thread-choice.ts';
import type { HostTensor } from './runtime/tensor.ts';
import type { WorkerSessionOptions } from './runtime/worker-protocol.ts';
import type { BundleInfo, InferenceOutcome, ModelRuntime, PredictInput, PredictionEvent, PredictOutput, StagedModel } from './model-runtime.ts';

/** Failures that are the model's or the runtime's fault (probation counts them); bad input is not. */
const MODEL_FAULTS = new Set(['INFERENCE_FAILED', 'WORKER_CRASHED', 'BUNDLE_MISMATCH']);

interface Staged extends StagedModel {
  readonly inner: StagedBundle;
}

export class EngineRuntime implements ModelRuntime {
  private readonly engine: InferenceEngine;
  private current: Staged | null = null;
  private readonly listeners = new Set<(o: InferenceOutcome) => void>();
  private readonly predictionListeners = new Set<(e: PredictionEvent) => void>();

  constructor(private readonly opts: { logger: Logger; hostOptions?: ModelHostOptions }) {
    this.engine = new InferenceEngine({
      hostOptions: {
        poolSize: 1, // one inference thread; the main thread keeps the other core on a 2-core device
        spawnOnLoad: true, // no worker (≈ 22 MB) until a bundle is staged
        ...opts.hostOptions,
        onEvent: (event) => this.onHostEvent(event),
      },
    });
  }

  start(): Promise<void> {
    return this.engine.start();
  }

  async stop(): Promise<void> {
    this.current = null;
    await this.engine.stop();
  }

  async stage(modelPath: string, definition: BundleDefinition, info: BundleInfo): Promise<StagedModel> {
    const labels = Array.isArray(definition.postprocess.labels) ? definition.postprocess.labels : undefined;
    const inner = await this.engine.stage({ bundle: { id: info.id, version: info.counter }, modelPath, preprocess: definition.preprocess, postprocess: definition.postprocess, labels, sessionOptions: definition.session });
    const staged: Staged = { info, inner, run: this.engine.smokeRunner(inner) };
    return staged;
  }

  async activate(model: StagedModel): Promise<void> {
    const staged = model as Staged;
    const replaced = this.engine.activate(staged.inner);
    this.current = staged;
    const placement = this.engine.placement(staged.inner);
    this.opts.logger.info({ bundle: staged.info.id, counter: staged.info.counter, thread: placement?.thread, why: placement?.reason }, `model activated on the ${placement?.thread === 'main' ? "agent's" : 'inference worker'} thread`);
    // The old session finishes what it was given, then goes (one session per active model: RSS).
    if (replaced && replaced !== staged.inner) {
      this.engine.release(replaced).catch((err) => this.opts.logger.warn({ err: (err as Error).message }, 'releasing the replaced model failed'));
    }
  }

  async discard(model: StagedModel): Promise<void> {
    const staged = model as Staged;
    if (this.current === staged) return;
    await this.engine.release(staged.inner);
  }

  active(): BundleInfo | null {
    return this.current?.info ?? null;
  }

  /** Where the active bundle's model runs and why. */
  activePlacement(): Placement | null {
    return (this.current && this.engine.placement(this.current.inner)) ?? null;
  }

  /** A model's thread chosen or changed (info: operators read it); crashes and restarts (warn). */
  private onHostEvent(event: HostEvent): void {
    if (event.type === 'worker-retired') return void this.opts.logger.info({ event }, 'inference worker ended: no model left on it');
    if (event.type !== 'placed') return void this.opts.logger.warn({ event }, 'inference worker event');
    const bundle = this.current?.inner.handle.id === event.handle ? this.current.info : undefined;
    this.opts.logger.info({ bundle: bundle?.id, counter: bundle?.counter, handle: event.handle, thread: event.thread, why: event.reason }, `model runs on the ${event.thread === 'main' ? "agent's" : 'inference worker'} thread`);
  }

  /** The options the active bundle's sessions were created with (over the worker's defaults). */
  activeSessionOptions(): Readonly<WorkerSessionOptions> | null {
    return this.current?.inner.handle.sessionOptions ?? null;
  }

  onOutcome(listener: (o: InferenceOutcome) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onPrediction(listener: (e: PredictionEvent) => void): () => void {
    this.predictionListeners.add(listener);
    return () => this.predictionListeners.delete(listener);
  }

  relabel(info: BundleInfo): void {
    const current = this.current;
    // Only for the very model serving (the reconciler checked every file; the bundle id may differ).
    if (current && current.info.modelSha256 === info.modelSha256) this.current = { ...current, info };
  }

  queueDepth(): number {
    return this.engine.host.queueDepth;
  }

  private emit(o: InferenceOutcome): void {
    for (const l of this.listeners) {
      try {
        l(o);
      } catch (err) {
        this.opts.logger.error({ err }, 'outcome listener failed');
      }
    }
  }

  private emitPrediction(e: PredictionEvent): void {
    for (const l of this.predictionListeners) {
      try {
        l(e);
      } catch (err) {
        this.opts.logger.error({ err }, 'prediction listener failed');
      }
    }
  }

  async predict(input: PredictInput): Promise<PredictOutput> {
    // Taken synchronously: the request runs on the bundle active right now, even if a swap follows.
    const unit = this.current;
    if (!unit) {
      throw new RuntimeError('NO_ACTIVE_MODEL', 'no bundle is active');
    }
    const started = performance.now();
    try {
      const r = await this.engine.predict(input, { staged: unit.inner, session: input.session });
      this.emit({ counter: unit.info.counter, ok: true });
      const output: PredictOutput = { outputs: plainOutputs(r.outputs), results: r.predictions.map((predictions) => ({ predictions })), batch: r.batch, predictions: r.batch ? r.predictions : r.predictions[0], bundle: unit.info, latencyMs: r.latencyMs };
      // A detector's answer names its predictions for what they are: boxes with a score and a label.
      if (unit.inner.postprocess.task === 'detection') output.detections = output.predictions;
      if (this.predictionListeners.size) this.emitPrediction({ bundle: unit.info, ok: true, latencyMs: performance.now() - started, input, output, rows: r.predictions, pixels: r.pixels, frames: r.frames as PredictionEvent['frames'] });
      return output;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (!code || MODEL_FAULTS.has(code)) this.emit({ counter: unit.info.counter, ok: false, code: code ?? 'INTERNAL' });
      if (this.predictionListeners.size) this.emitPrediction({ bundle: unit.info, ok: false, code: code ?? 'INTERNAL', latencyMs: performance.now() - started, input });
      throw err;
    }
  }
}

function plainOutputs(outputs: Record<string, HostTensor>): PredictOutput['outputs'] {
  const out: PredictOutput['outputs'] = {};
  for (const [name, t] of Object.entries(outputs)) {
    if (Array.isArray(t.data)) continue; // string tensors have no numeric form
    out[name] = { dims: [...t.dims], data: Array.from(t.data as ArrayLike<number | bigint>, Number) };
  }
  return out;
}
