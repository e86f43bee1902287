// Shadow evaluation on the device. The verified manifest of the serving bundle may name a candidate
// (`shadow`, signed with it): the candidate's files are downloaded and checked against the signed
// hashes and sizes, its bundle.json against this agent's version, and it is loaded in its own
// inference thread and must pass its smoke vectors — the update path up to staging, never activating.
// Then a share of live requests is also run on it, after the active model has answered (prediction
// events only enqueue, into a bounded queue: a busy candidate skips requests instead of piling up
// work), and the two answers are compared. Every closed window goes into the `reported` document
// with the totals since the candidate was loaded. A manifest without the candidate ends it.
import { createHash } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { DeploymentManifest, ShadowCandidate } from '../../firmware-bundles/manifest.ts';
import { runSmokeVectors } from '../../firmware-bundles/smoke.ts';
import type { ShadowReport } from '../../protocol/messages/shadow.ts';
import type { Downloader } from '../downloader.ts';
import type { ModelRuntime, PredictionEvent } from '../model-runtime.ts';
import { InferenceEngine, type StagedBundle } from '../runtime/engine.ts';
import type { HostTensor } from '../runtime/tensor.ts';
import { smokeVectorsOf, verifyDownloadedBundle } from '../update/stage.ts';
import { ShadowAccumulator, type PlainTensor } from './shadow-figures.ts';

export const SHADOW_DIR = 'shadow';
/** Sampled requests waiting for the candidate; beyond it they are skipped (and counted). */
const QUEUE_MAX = 8;

export interface ShadowEvaluatorOptions {
  dataDir: string;
  agentVersion: string;
  downloader: Downloader;
  /**
   * How long a candidate's download may wait out an unreachable or overloaded server before the candidate
   * is reported failed (the agent's update time bound, `--update-timeout-ms`): those waits are not counted
   * as retries (downloader.ts), so without a bound a server that never answers would be asked forever.
   */
  downloadTimeoutMs: number;
  /** The serving runtime: its prediction events are what the candidate sees. */
  runtime: ModelRuntime;
  /** Publishes the shadow part of `reported` (null: no shadow). */
  report(r: ShadowReport | null): void;
  logger: Logger;
}

interface Running {
  candidate: ShadowCandidate;
  key: string;
  since: string;
  ctl: AbortController;
  state: ShadowReport['state'];
  reason?: string;
  staged?: StagedBundle;
  classifier: boolean;
  total: ShadowAccumulator;
  window: ShadowAccumulator;
  windowStart: string;
  lastWindow: ShadowReport['window'];
  timer?: NodeJS.Timeout;
  credit: number;
  queue: PredictionEvent[];
  draining: boolean;
}

export class ShadowEvaluator {
  private engine?: InferenceEngine;
  private current: Running | null = null;
  private unsubscribe?: () => void;
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly o: ShadowEvaluatorOptions) {}

  start(): void {
    this.unsubscribe = this.o.runtime.onPrediction((e) => this.offer(e));
  }

  /** The serving bundle's verified manifest changed (boot, activation, re-signed manifest). */
  configure(m: DeploymentManifest): void {
    const c = m.shadow;
    this.chain = this.chain.then(() => this.apply(c ?? null)).catch((err) => this.o.logger.error({ err }, 'shadow configuration failed'));
  }

  /** Resolves once every configuration so far is applied (tests). */
  settled(): Promise<void> {
    return this.chain;
  }

  status() {
    const r = this.current;
    return r ? { rolloutId: r.candidate.rolloutId, bundleId: r.candidate.bundle.id, state: r.state, ...(r.reason ? { reason: r.reason } : {}), share: r.candidate.share, compared: r.total.compared, queued: r.queue.length } : null;
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.chain.catch(() => {});
    await this.end();
    await this.engine?.stop();
    this.engine = undefined;
  }

  private async apply(c: ShadowCandidate | null): Promise<void> {
    const key = c ? createHash('sha256').update(JSON.stringify([c.rolloutId, c.bundle.id, c.files])).digest('hex').slice(0, 16) : null;
    if (this.current && key === this.current.key) {
      // Same candidate, perhaps another share or window length: keep the figures.
      const r = this.current;
      const windowChanged = r.candidate.windowS !== c!.windowS;
      r.candidate = c!;
      if (windowChanged && r.state === 'shadowing') this.startWindows(r);
      return;
    }
    await this.end();
    if (!c || !key) {
      this.o.report(null);
      return;
    }
    const r: Running = {
      candidate: c,
      key,
      since: new Date().toISOString(),
      ctl: new AbortController(),
      state: 'loading',
      classifier: true,
      total: new ShadowAccumulator(true),
      window: new ShadowAccumulator(true),
      windowStart: new Date().toISOString(),
      lastWindow: null,
      credit: 0,
      queue: [],
      draining: false,
    };
    this.current = r;
    this.publish(r);
    try {
      await this.load(r);
    } catch (err) {
      if (r.ctl.signal.aborted) return;
      r.state = 'failed';
      r.reason = `${(err as { code?: string }).code ?? 'SHADOW_FAILED'}: ${(err as Error).message}`.slice(0, 2000);
      this.o.logger.warn({ candidate: c.bundle.id, reason: r.reason }, 'shadow candidate not loaded');
      this.publish(r);
      return;
    }
    r.state = 'shadowing';
    this.startWindows(r);
    this.o.logger.info({ candidate: c.bundle.id, share: c.share }, 'shadow evaluation started');
    this.publish(r);
  }

  /** Download, verify and stage the candidate like an update, up to (not including) activation. */
  private async load(r: Running): Promise<void> {
    const c = r.candidate;
    const dir = path.join(this.o.dataDir, SHADOW_DIR, r.key);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const giveUpAt = Date.now() + this.o.downloadTimeoutMs;
    for (const file of c.files) await this.o.downloader.fetchFile(file, dir, { signal: r.ctl.signal, giveUpAt });
    r.ctl.signal.throwIfAborted();
    const definition = await verifyDownloadedBundle(dir, c, this.o.agentVersion);
    if (!this.engine) {
      // Its own inference thread: the candidate never takes the active model's thread.
      this.engine = new InferenceEngine({ hostOptions: { poolSize: 1, spawnOnLoad: true, onEvent: (event) => this.o.logger.warn({ event }, 'shadow worker event') } });
      await this.engine.start();
    }
    const modelPath = path.join(dir, 'model.onnx');
    const labels = Array.isArray(definition.postprocess.labels) ? definition.postprocess.labels : undefined;
    const staged = await this.engine.stage({ bundle: { id: c.bundle.id, version: c.bundle.model.version }, modelPath, preprocess: definition.preprocess, postprocess: definition.postprocess, labels, sessionOptions: definition.session });
    try {
      const smoke = await runSmokeVectors(this.engine.smokeRunner(staged), await smokeVectorsOf(modelPath, definition), definition.smoke.tolerance);
      if (!smoke.ok) throw Object.assign(new Error(smoke.failures.slice(0, 3).map((f) => f.message).join('; ')), { code: 'SMOKE_TEST_FAILED' });
      r.ctl.signal.throwIfAborted();
    } catch (err) {
      await this.engine.release(staged).catch(() => {});
      throw err;
    }
    r.staged = staged;
    r.classifier = definition.postprocess.task === 'classification';
    r.total = new ShadowAccumulator(r.classifier);
    r.window = new ShadowAccumulator(r.classifier);
  }

  private startWindows(r: Running): void {
    clearInterval(r.timer);
    r.windowStart = new Date().toISOString();
    r.timer = setInterval(() => this.closeWindow(r), r.candidate.windowS * 1000);
    r.timer.unref();
  }

  private closeWindow(r: Running): void {
    const end = new Date().toISOString();
    r.lastWindow = { ...r.window.figures(), start: r.windowStart, end };
    r.window = new ShadowAccumulator(r.classifier);
    r.windowStart = end;
    this.publish(r);
  }

  private publish(r: Running): void {
    if (this.current !== r) return;
    this.o.report({
      rolloutId: r.candidate.rolloutId,
      bundleId: r.candidate.bundle.id,
      state: r.state,
      ...(r.reason ? { reason: r.reason } : {}),
      since: r.since,
      share: r.candidate.share,
      window: r.lastWindow,
      total: r.total.figures(),
    });
  }

  /** Request path: O(1), only decides and enqueues. */
  private offer(e: PredictionEvent): void {
    const r = this.current;
    if (!r || r.state !== 'shadowing' || !e.ok || !e.output) return;
    // Stateful sessions carry state per model; feeding the candidate half a session would compare nothing.
    if (e.input.session !== undefined) return;
    // Deterministic share: every request adds `share` of credit; a whole credit buys one shadow run.
    r.credit += r.candidate.share;
    if (r.credit < 1) return;
    r.credit -= 1;
    if (r.queue.length >= QUEUE_MAX) {
      r.window.skipped++;
      r.total.skipped++;
      return;
    }
    r.queue.push(e);
    if (!r.draining) {
      r.draining = true;
      setImmediate(() => void this.drain(r));
    }
  }

  private async drain(r: Running): Promise<void> {
    try {
      while (r.queue.length && this.current === r && r.staged && this.engine) {
        const e = r.queue.shift()!;
        try {
          const out = await this.engine.predict(e.input, { staged: r.staged });
          const cand = plain(out.outputs);
          const latency = { activeMs: e.output!.latencyMs, candidateMs: out.latencyMs };
          r.window.add(e.output!.outputs, cand, latency);
          r.total.add(e.output!.outputs, cand, latency);
        } catch {
          r.window.candidateErrors++;
          r.total.candidateErrors++;
        }
      }
    } finally {
      r.draining = false;
    }
  }

  private async end(): Promise<void> {
    const r = this.current;
    if (!r) return;
    this.current = null;
    r.ctl.abort();
    clearInterval(r.timer);
    r.queue.length = 0;
    if (r.staged && this.engine) await this.engine.release(r.staged).catch(() => {});
    await rm(path.join(this.o.dataDir, SHADOW_DIR, r.key), { recursive: true, force: true }).catch(() => {});
    this.o.logger.info({ candidate: r.candidate.bundle.id }, 'shadow evaluation ended');
  }
}

function plain(outputs: Record<string, HostTensor>): Record<string, PlainTensor> {
  const out: Record<string, PlainTensor> = {};
  for (const [name, t] of Object.entries(outputs)) {
    if (Array.isArray(t.data)) continue;
    out[name] = { dims: t.dims, data: Array.from(t.data as ArrayLike<number | bigint>, Number) };
  }
  return out;
}
