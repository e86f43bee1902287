// The simulator's stand-in for onnxruntime: the agent's ModelRuntime contract without a session.
// A real session per simulated device would not fit (≈ 22 MB of worker each), and the simulator tests
// the fleet's control paths, not the model's arithmetic. So:
// - stage() reads the bundle's smoke vectors (inline or smoke.bin, as the agent's staging does) and
//   its run() answers each recorded input with its recorded output: the agent's smoke check runs for
//   real and passes exactly when the files are the ones the manifest signed;
// - a device chosen to fail (`--fail-updates`) refuses to load the model (MODEL_LOAD_FAILED), so its
//   update ends `failed` through the agent's own error path;
// - predict() answers tabular rows with a class drawn from the bundle's labels and emits the same
//   prediction events the real runtime does, which feed telemetry, statistics and probation.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { BundleDefinition } from '../firmware-bundles/definition.ts';
import { decodeSmokeFile } from '../firmware-bundles/smoke-file.ts';
import type { BundleInfo, InferenceOutcome, ModelRuntime, PredictInput, PredictionEvent, PredictOutput, StagedModel } from '../agent/model-runtime.ts';
import { RuntimeError } from '../agent/runtime/errors.ts';
import { rowGenerator, type DriftSpec } from './inputs.ts';

type Tensors = Record<string, { dims: number[]; data: number[] }>;

interface StubModel extends StagedModel {
  readonly labels: readonly string[];
  /** Simulated request rows for this bundle (tabular only). */
  readonly nextRow: (() => Record<string, number | string>) | null;
}

/** Key of one smoke input: its tensors in name order (the staging passes them as the vector holds them). */
function feedKey(feeds: Tensors): string {
  const h = createHash('sha256');
  for (const name of Object.keys(feeds).sort()) h.update(name).update(JSON.stringify(feeds[name].dims)).update(JSON.stringify(Array.from(feeds[name].data)));
  return h.digest('hex');
}

export interface StubRuntimeOptions {
  /** Refuse every model load (the device simulates a failing update). */
  failLoads?: boolean;
  /** Latency reported per request, in ms. */
  latencyMs?: number;
  /** Shifted features of the simulated requests. */
  drift?: readonly DriftSpec[];
}

export class StubRuntime implements ModelRuntime {
  private current: StubModel | null = null;
  private readonly outcomeListeners = new Set<(o: InferenceOutcome) => void>();
  private readonly predictionListeners = new Set<(e: PredictionEvent) => void>();

  constructor(private readonly opts: StubRuntimeOptions = {}) {}

  async start(): Promise<void> {}

  async stop(): Promise<void> {
    this.current = null;
  }

  async stage(modelPath: string, definition: BundleDefinition, info: BundleInfo): Promise<StagedModel> {
    if (this.opts.failLoads) throw new RuntimeError('MODEL_LOAD_FAILED', 'simulated model load failure (--fail-updates)');
    const vectors = definition.smoke.file
      ? decodeSmokeFile(await readFile(path.join(path.dirname(modelPath), definition.smoke.file.path)))
      : definition.smoke.vectors;
    const answers = new Map<string, Tensors>();
    for (const v of vectors) answers.set(feedKey(v.inputs), v.expected);
    const labels = Array.isArray(definition.postprocess.labels) ? definition.postprocess.labels : ['0', '1'];
    const model: StubModel = {
      info,
      labels,
      nextRow: rowGenerator(definition, this.opts.drift ?? []),
      run: async (feeds) => {
        const expected = answers.get(feedKey(feeds));
        if (!expected) throw new RuntimeError('INFERENCE_FAILED', 'the stub only answers the bundle\'s smoke vectors');
        return expected;
      },
    };
    return model;
  }

  async activate(staged: StagedModel): Promise<void> {
    this.current = staged as StubModel;
  }

  async discard(): Promise<void> {}

  active(): BundleInfo | null {
    return this.current?.info ?? null;
  }

  relabel(info: BundleInfo): void {
    if (this.current && this.current.info.modelSha256 === info.modelSha256) this.current = { ...this.current, info };
  }

  /** A simulated request of `rows` rows for the active bundle, or null (none active, or not tabular). */
  request(rows: number): PredictInput | null {
    const next = this.current?.nextRow;
    if (!next || rows < 1) return null;
    return { features: Array.from({ length: rows }, next) };
  }

  queueDepth(): number {
    return 0;
  }

  onOutcome(listener: (o: InferenceOutcome) => void): () => void {
    this.outcomeListeners.add(listener);
    return () => this.outcomeListeners.delete(listener);
  }

  onPrediction(listener: (e: PredictionEvent) => void): () => void {
    this.predictionListeners.add(listener);
    return () => this.predictionListeners.delete(listener);
  }

  async predict(input: PredictInput): Promise<PredictOutput> {
    const unit = this.current;
    if (!unit) throw new RuntimeError('NO_ACTIVE_MODEL', 'no bundle is active');
    const rowCount = 'features' in input && Array.isArray(input.features) && input.features.some((r) => r !== null && typeof r === 'object') ? input.features.length : 1;
    const rows = Array.from({ length: rowCount }, () => {
      const index = Math.floor(Math.random() * unit.labels.length);
      return [{ label: unit.labels[index], index, score: 0.5 + Math.random() / 2 }];
    });
    const latencyMs = this.opts.latencyMs ?? 1;
    const output: PredictOutput = { outputs: {}, results: rows.map((predictions) => ({ predictions })), batch: rowCount > 1, predictions: rowCount === 1 ? rows[0] : rows, bundle: unit.info, latencyMs };
    for (const l of this.outcomeListeners) l({ counter: unit.info.counter, ok: true });
    const event: PredictionEvent = { bundle: unit.info, ok: true, latencyMs, input, output, rows };
    for (const l of this.predictionListeners) l(event);
    return output;
  }
}
