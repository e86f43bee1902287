// The update path (DESIGN.md "The agent's update path"):
//
//   desired → key list (pinned root) → manifest (device, counter, expiry, agent version, signatures)
//   → downloading (resumable) → verifying → staging (load beside the active model, smoke vectors)
//   → activating (install on disk atomically, then swap the runtime) → probation → active
//
// Anything failing before `activating` leaves the running model untouched; a failed probation rolls
// back to the previous bundle. Every update ends in a terminal state within `updateTimeoutMs` plus the
// probation window. One update runs at a time; a newer desired message supersedes one waiting, and
// also one still downloading or staging (nothing of it is live yet).
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { BundleDefinition } from '../firmware-bundles/definition.ts';
import { verifyFile } from '../firmware-bundles/file-digest.ts';
import type { PublicKeyRef } from '../firmware-bundles/keys.ts';
import type { DeploymentManifest } from '../firmware-bundles/manifest.ts';
import { runSmokeVectors } from '../firmware-bundles/smoke.ts';
import { compareVersions } from '../firmware-bundles/semver.ts';
import { TERMINAL_STATES, type UpdateState } from '../protocol/messages/reported.ts';
import { BundleError, type BundleStore, type InstalledBundle } from './bundle-store.ts';
import type { AgentConfig } from './config.ts';
import { checkDesired, manifestDigest, type DesiredContext, type UpdateJob } from './desired-check.ts';
import type { Downloader } from './downloader.ts';
import type { BundleInfo, ModelRuntime, StagedModel } from './model-runtime.ts';
import { watchProbation } from './probation.ts';
import type { Reporter } from './reporter.ts';
import type { StateStore } from './state-store.ts';
import { boundedStep, toUpdateError, UpdateError } from './update-error.ts';

export { manifestDigest } from './desired-check.ts';
export { UpdateError } from './update-error.ts';

export interface ReconcilerOptions {
  deviceId: string;
  pinnedRoot: PublicKeyRef | null;
  agentVersion: string;
  config: Pick<
    AgentConfig,
    'probationMs' | 'probationRequests' | 'probationMinRequests' | 'probationMaxErrorRate' | 'updateTimeoutMs' | 'stepTimeoutMs'
  >;
  state: StateStore;
  bundles: BundleStore;
  downloader: Downloader;
  runtime: ModelRuntime;
  reporter: Reporter;
  logger: Logger;
  /** Called whenever the serving bundle (or its signed manifest) changes: boot, activation, rollback, re-signed manifest. */
  onActive?(bundle: InstalledBundle): void;
}

const EARLY_PHASES: ReadonlySet<UpdateState> = new Set(['downloading', 'verifying', 'staging']);
const SUPERSEDED = 'SUPERSEDED';
/** Failures worth trying again when the same manifest is delivered again (reconnect, restart). */
const RETRYABLE = new Set(['DOWNLOAD_FAILED']);

export function bundleInfoOf(b: InstalledBundle): BundleInfo {
  return { id: b.manifest.bundle.id, name: b.manifest.bundle.name, model: b.manifest.bundle.model, counter: b.manifest.counter, modelSha256: b.modelSha256 };
}

export class Reconciler {
  private chain: Promise<void> = Promise.resolve();
  private pending: UpdateJob | null = null;
  private running: { job: UpdateJob; ctl: AbortController; phase: UpdateState } | null = null;
  private worker: Promise<void> | null = null;
  private activeBundle: InstalledBundle | null = null;
  private activeDigest: string | null = null;
  private readonly stopCtl = new AbortController();
  private probationRun: Promise<void> | null = null;
  private inProbation = false;
  /** Desired messages dropped as malformed (counted, never thrown). */
  dropped = 0;

  constructor(private readonly o: ReconcilerOptions) {}

  get active(): InstalledBundle | null {
    return this.activeBundle;
  }

  get busy(): boolean {
    return this.running !== null || this.pending !== null || this.inProbation;
  }

  /**
   * Boots into the newest bundle that still verifies: `current`, else `previous` (and repairs the
   * pointer). A probation cut short by a restart starts over.
   */
  async start(): Promise<void> {
    const { bundles, state, reporter, logger } = this.o;
    await bundles.init();
    const s = await state.load();
    const current = await bundles.pointer('current');
    const previous = await bundles.pointer('previous');
    const candidates = [current, previous].filter((n, i, all): n is string => n !== null && all.indexOf(n) === i);
    let firstFailure: BundleError | null = null;
    for (const [i, name] of candidates.entries()) {
      try {
        const b = await bundles.verifyInstalled(name, this.verifyContext());
        const staged = await this.stageAndSmoke(b);
        await this.o.runtime.activate(staged);
        this.setActive(b);
        if (name !== current) {
          await bundles.setCurrent(name);
          await bundles.clearPrevious();
          logger.error({ broken: current, fallback: name, reason: firstFailure?.code }, 'current bundle is broken; fell back to the previous one');
          await reporter.transition('rolled_back', { counter: b.manifest.counter, bundleId: b.manifest.bundle.id, reason: firstFailure?.code ?? 'INVALID_BUNDLE', message: `current bundle ${current} failed verification at start: ${firstFailure?.message ?? 'unknown'}` });
        }
        break;
      } catch (err) {
        const e = err instanceof BundleError ? err : new BundleError((err as { code?: string }).code ?? 'INVALID_BUNDLE', (err as Error).message);
        firstFailure ??= e;
        logger.error({ bundle: name, code: e.code, err: e.message }, 'installed bundle failed verification');
      }
    }
    if (current && this.activeBundle?.name !== current) {
      // The desired state most likely still names the broken bundle: let it be installed again.
      const brokenDigest = await this.manifestDigestOf(current);
      if (brokenDigest) await state.update((st) => void (st.reinstall = brokenDigest));
    }
    if (!this.activeBundle && firstFailure) {
      await bundles.setCurrent(null);
      await reporter.transition('failed', { reason: firstFailure.code, message: `no installed bundle verifies: ${firstFailure.message}` });
    }
    const activeCounter = this.activeBundle?.manifest.counter ?? 0;
    if (activeCounter > s.highWaterCounter || (s.probation && s.probation.dir !== this.activeBundle?.name)) {
      await state.update((st) => {
        st.highWaterCounter = Math.max(st.highWaterCounter, activeCounter);
        if (st.probation && st.probation.dir !== this.activeBundle?.name) st.probation = null;
      });
    }
    const last = state.get().transitions.at(-1);
    const lastState = last && TERMINAL_STATES.has(last.state) && last.state !== 'active' ? last.state : this.activeBundle ? 'active' : 'idle';
    reporter.restore(lastState, this.activeBundle ? { bundleId: this.activeBundle.manifest.bundle.id, counter: this.activeBundle.manifest.counter } : null);
    const probation = state.get().probation;
    if (probation && this.activeBundle && probation.dir === this.activeBundle.name) {
      logger.info({ bundle: probation.dir }, 'restarting the probation cut short by a restart');
      this.probationRun = this.runProbation(this.activeBundle.manifest, this.activeDigest!)
        .catch((err) => logger.error({ err }, 'probation failed unexpectedly'))
        .finally(() => (this.probationRun = null));
    }
    if (this.activeBundle) logger.info({ bundle: this.activeBundle.name, counter: activeCounter }, 'serving installed bundle');
    else logger.info('no bundle installed yet; waiting for desired state');
  }

  /** Entry point for `desired` payloads; never throws, handles messages one at a time in order. */
  handleDesired(payload: Buffer): void {
    this.chain = this.chain.then(() => this.onDesired(payload)).catch((err) => this.o.logger.error({ err }, 'desired handling failed'));
  }

  /** Resolves once every desired message received so far has been looked at (tests). */
  settled(): Promise<void> {
    return this.chain;
  }

  private verifyContext() {
    return { pinnedRoot: this.o.pinnedRoot, deviceId: this.o.deviceId, agentVersion: this.o.agentVersion };
  }

  private async onDesired(payload: Buffer): Promise<void> {
    const { state, reporter, logger } = this.o;
    if (this.stopCtl.signal.aborted || payload.length === 0) return;
    const s = state.get();
    const v = checkDesired(payload, {
      pinnedRoot: this.o.pinnedRoot,
      deviceId: this.o.deviceId,
      agentVersion: this.o.agentVersion,
      storedKeylist: s.keylist as DesiredContext['storedKeylist'],
      floor: Math.max(s.highWaterCounter, this.activeBundle?.manifest.counter ?? 0),
      reinstall: s.reinstall,
      known: (d) => d === this.activeDigest || state.isHandled(d) || this.running?.job.digest === d || this.pending?.digest === d,
      now: new Date(),
    });
    if (v.kind === 'drop') {
      this.dropped++;
      logger.warn({ why: v.why }, 'dropped a malformed desired message');
      return;
    }
    if (v.keylistToStore) {
      const list = v.keylistToStore;
      await state.update((st) => void (st.keylist = list));
      logger.info({ version: (list.signed as { version?: number }).version }, 'key list updated');
      reporter.flush();
    }
    if (v.kind === 'ignore') {
      logger.debug({ why: v.why }, 'desired message needs no action');
      return;
    }
    if (v.kind === 'reject') {
      const { digest } = v;
      if (digest) {
        await state.update((st) => {
          st.handled.push({ digest, counter: v.counter ?? -1, outcome: v.code });
          if (st.reinstall === digest) st.reinstall = null;
        });
      }
      await reporter.transition('failed', { counter: v.counter, bundleId: v.bundleId, reason: v.code, message: v.message });
      return;
    }
    const job = v.job;
    if (this.pending) {
      logger.info({ superseded: this.pending.manifest.counter, by: job.manifest.counter }, 'a newer desired state supersedes the waiting one');
      await this.markHandled(this.pending, SUPERSEDED);
    }
    this.pending = job;
    const running = this.running;
    if (running && EARLY_PHASES.has(running.phase) && job.manifest.counter > running.job.manifest.counter) {
      logger.info({ superseded: running.job.manifest.counter, by: job.manifest.counter }, 'a newer desired state supersedes the update in progress');
      running.ctl.abort(new UpdateError(SUPERSEDED, `superseded by counter ${job.manifest.counter}`));
    }
    this.kick();
  }

  private kick(): void {
    if (this.worker) return;
    this.worker = (async () => {
      try {
        while (this.pending && !this.stopCtl.signal.aborted) {
          const job = this.pending;
          this.pending = null;
          await this.probationRun; // a probation resumed at start finishes first
          await this.run(job);
        }
      } finally {
        this.worker = null;
      }
    })().catch((err) => this.o.logger.error({ err }, 'update loop failed'));
  }

  private async markHandled(job: UpdateJob, outcome: string): Promise<void> {
    await this.o.state.update((s) => {
      s.handled.push({ digest: job.digest, counter: job.manifest.counter, outcome });
      if (s.reinstall === job.digest) s.reinstall = null;
    });
  }

  private async manifestDigestOf(name: string): Promise<string | null> {
    try {
      return manifestDigest(JSON.parse(await readFile(path.join(this.o.bundles.bundlesDir, name, 'manifest.json'), 'utf8')).signed);
    } catch {
      return null;
    }
  }

  private async run(job: UpdateJob): Promise<void> {
    if (this.activeBundle && sameFiles(job.manifest, this.activeBundle.manifest)) return this.adopt(job, this.activeBundle);
    const { bundles, downloader, reporter, runtime, logger, config } = this.o;
    const ctl = new AbortController();
    const signal = AbortSignal.any([ctl.signal, this.stopCtl.signal]);
    const running = { job, ctl, phase: 'downloading' as UpdateState };
    this.running = running;
    const m = job.manifest;
    const ids = { counter: m.counter, bundleId: m.bundle.id };
    const phase = async (p: UpdateState) => {
      signal.throwIfAborted();
      running.phase = p;
      await reporter.transition(p, ids);
    };
    const deadline = setTimeout(() => ctl.abort(new UpdateError('TIMEOUT', `update did not finish within ${config.updateTimeoutMs} ms (while ${running.phase})`)), config.updateTimeoutMs);
    let staged: StagedModel | null = null;
    let installed = false;
    const started = Date.now();
    try {
      // Downloading: every file, resumable, stream-hashed and capped at its signed size.
      await phase('downloading');
      const dir = await bundles.stagingDir(job.name);
      const total = m.files.reduce((n, f) => n + f.size, 0);
      const done = new Map<string, number>();
      for (const file of m.files) {
        await downloader.fetchFile(file, dir, {
          signal,
          onProgress: (bytes) => {
            done.set(file.path, bytes);
            let sum = 0;
            for (const v of done.values()) sum += v;
            reporter.setProgress(sum, total);
          },
        });
      }
      reporter.setProgress(total, total);

      // Verifying: the files as they sit on disk, and the bundle definition.
      await phase('verifying');
      for (const file of m.files) {
        const r = await verifyFile(path.join(dir, file.path), file);
        if (!r.ok) throw new UpdateError(r.reason, `${file.path}: ${r.message}`);
      }
      let definition: BundleDefinition;
      try {
        const parsed = BundleDefinition.safeParse(JSON.parse(await readFile(path.join(dir, 'bundle.json'), 'utf8')));
        if (!parsed.success) throw new Error(parsed.error.issues[0].message);
        definition = parsed.data;
      } catch (err) {
        throw new UpdateError('INVALID_BUNDLE', `bundle.json: ${(err as Error).message}`);
      }
      if (compareVersions(this.o.agentVersion, definition.minAgentVersion) < 0) {
        throw new UpdateError('AGENT_TOO_OLD', `bundle needs agent ${definition.minAgentVersion}, this is ${this.o.agentVersion}`);
      }

      // Staging: load beside the active model and reproduce the smoke vectors on that session.
      await phase('staging');
      const info: BundleInfo = { id: m.bundle.id, name: m.bundle.name, model: m.bundle.model, counter: m.counter, modelSha256: m.files.find((f) => f.path === 'model.onnx')!.sha256 };
      staged = await this.stageAndSmoke({ modelPath: path.join(dir, 'model.onnx'), definition, info }, signal);

      // Activating: past this point the update is not superseded any more.
      await phase('activating');
      await this.o.state.update((s) => void (s.probation = { counter: m.counter, dir: job.name }));
      await this.step(bundles.install(job.name, { manifest: job.manifestEnvelope, keylist: job.keylistEnvelope }, { verifiedAt: new Date().toISOString() }), 'ACTIVATION_FAILED', 'installing the bundle');
      installed = true;
      try {
        await this.step(runtime.activate(staged), 'ACTIVATION_FAILED', 'swapping the model');
      } catch (err) {
        await bundles.revert().catch((e) => logger.error({ err: e }, 'could not restore the previous pointer'));
        throw err;
      }
      staged = null;
      const b = await bundles.read(job.name);
      this.setActive(b);
      await this.o.state.update((s) => void (s.highWaterCounter = Math.max(s.highWaterCounter, m.counter)));
      logger.info({ counter: m.counter, bundle: job.name, ms: Date.now() - started }, 'activated; probation starts');
    } catch (err) {
      clearTimeout(deadline);
      this.running = null;
      if (staged) await runtime.discard(staged).catch(() => {});
      await this.failed(job, err, running.phase, installed);
      return;
    }
    clearTimeout(deadline);
    this.running = null;
    await this.runProbation(job.manifest, job.digest);
  }

  /**
   * A manifest for the files already serving (the server re-signed it: key rotation, expiry refresh,
   * new agent settings): nothing to download, stage or watch. The new envelopes replace the old
   * ones on disk (so a restart boots with them) and the new counter becomes the floor.
   */
  private async adopt(job: UpdateJob, from: InstalledBundle): Promise<void> {
    const { bundles, state, reporter, runtime, logger } = this.o;
    const m = job.manifest;
    this.running = { job, ctl: new AbortController(), phase: 'activating' };
    try {
      await bundles.adopt(from.name, job.name, { manifest: job.manifestEnvelope, keylist: job.keylistEnvelope }, { verifiedAt: new Date().toISOString(), ...(from.activatedAt ? { activatedAt: from.activatedAt } : {}) });
      const b = await bundles.read(job.name);
      runtime.relabel(bundleInfoOf(b));
      this.setActive(b);
    } catch (err) {
      this.running = null;
      await this.failed(job, new UpdateError('ACTIVATION_FAILED', `adopting the re-signed manifest: ${(err as Error).message}`), 'activating', false);
      return;
    }
    this.running = null;
    await state.update((s) => {
      s.highWaterCounter = Math.max(s.highWaterCounter, m.counter);
      s.handled.push({ digest: job.digest, counter: m.counter, outcome: 'active' });
      if (s.reinstall === job.digest) s.reinstall = null;
    });
    await reporter.transition('active', { counter: m.counter, bundleId: m.bundle.id });
    logger.info({ counter: m.counter, bundle: job.name }, 're-signed manifest for the serving bundle adopted (no download)');
  }

  private async failed(job: UpdateJob, err: unknown, phaseAt: UpdateState, installed: boolean): Promise<void> {
    const { reporter, logger, bundles } = this.o;
    const m = job.manifest;
    const ids = { counter: m.counter, bundleId: m.bundle.id };
    if (this.stopCtl.signal.aborted) {
      // Stopping: leave everything for the next start (partial downloads resume, the retained
      // desired message brings the manifest back).
      logger.info({ counter: m.counter, phase: phaseAt }, 'update interrupted by stop');
      return;
    }
    const e = toUpdateError(err, phaseAt);
    if (e.code === SUPERSEDED) {
      await this.markHandled(job, SUPERSEDED);
      await reporter.transition('idle', { ...ids, reason: SUPERSEDED, message: e.message, error: false });
      await bundles.prune(new Set(this.pending ? [this.pending.name] : [])).catch(() => {});
      return;
    }
    if (!RETRYABLE.has(e.code)) {
      await this.markHandled(job, e.code);
      // A failed download keeps its part files so the next delivery resumes; the rest goes.
      if (!installed) await bundles.prune(new Set(this.pending ? [this.pending.name] : [])).catch(() => {});
    }
    await reporter.transition('failed', { ...ids, reason: e.code, message: e.message });
  }

  private async runProbation(m: DeploymentManifest, digest: string): Promise<void> {
    const { reporter, logger, config, state, bundles } = this.o;
    const ids = { counter: m.counter, bundleId: m.bundle.id };
    this.inProbation = true;
    let verdict;
    try {
      await reporter.transition('probation', ids);
      verdict = await watchProbation(
        this.o.runtime,
        m.counter,
        { durationMs: config.probationMs, requests: config.probationRequests, minRequests: config.probationMinRequests, maxErrorRate: config.probationMaxErrorRate },
        this.stopCtl.signal,
      );
    } finally {
      this.inProbation = false;
    }
    if (verdict.interrupted) return;
    if (verdict.ok) {
      await state.update((s) => {
        s.probation = null;
        s.handled.push({ digest, counter: m.counter, outcome: 'active' });
        if (s.reinstall === digest) s.reinstall = null;
      });
      await reporter.transition('active', ids);
      const removed = await bundles.prune(new Set(this.pending ? [this.pending.name] : []));
      logger.info({ counter: m.counter, removed, verdict: verdict.message }, 'probation passed');
      return;
    }
    logger.error({ counter: m.counter, verdict: verdict.message }, 'probation failed; rolling back');
    // Judged first: if the agent dies mid-rollback, the redelivered manifest is not tried again.
    await state.update((s) => {
      s.handled.push({ digest, counter: m.counter, outcome: 'PROBATION_FAILED' });
      if (s.reinstall === digest) s.reinstall = null;
    });
    try {
      await this.rollbackToPrevious();
      await reporter.transition('rolled_back', { ...ids, reason: 'PROBATION_FAILED', message: verdict.message });
    } catch (err) {
      await state.update((s) => void (s.probation = null));
      await reporter.transition('failed', { ...ids, reason: 'PROBATION_FAILED', message: `${verdict.message}; rollback impossible: ${(err as Error).message}` });
    }
  }

  /** Re-verifies the previous bundle, stages and smoke-tests it, then points `current` at it and swaps. */
  private async rollbackToPrevious(): Promise<InstalledBundle> {
    const { bundles, runtime, state } = this.o;
    const prevName = await bundles.pointer('previous');
    if (!prevName) throw new UpdateError('NO_PREVIOUS', 'there is no previous bundle to roll back to');
    const prev = await bundles.verifyInstalled(prevName, this.verifyContext());
    const staged = await this.stageAndSmoke(prev);
    try {
      await bundles.revert();
    } catch (err) {
      await runtime.discard(staged).catch(() => {});
      throw err;
    }
    await runtime.activate(staged);
    this.setActive(prev);
    await state.update((s) => void (s.probation = null));
    return prev;
  }

  /** The `rollback` command: back to the previous bundle, refused while an update runs. */
  async rollback(): Promise<{ active: BundleInfo }> {
    if (this.running || this.inProbation) {
      throw new UpdateError('BUSY', `an update is in progress (${this.running?.phase ?? 'probation'}); try again when it has finished`);
    }
    const from = this.activeBundle;
    const prev = await this.rollbackToPrevious();
    await this.o.reporter.transition('rolled_back', {
      counter: from?.manifest.counter,
      bundleId: from?.manifest.bundle.id,
      reason: 'ROLLBACK_REQUESTED',
      message: `rolled back from ${from?.name ?? 'nothing'} to ${prev.name} on request`,
      error: false,
    });
    return { active: bundleInfoOf(prev) };
  }

  private setActive(b: InstalledBundle): void {
    this.activeBundle = b;
    this.activeDigest = manifestDigest(b.manifestEnvelope.signed);
    this.o.reporter.setActive({ bundleId: b.manifest.bundle.id, bundleName: b.manifest.bundle.name, model: b.manifest.bundle.model, counter: b.manifest.counter, modelSha256: b.modelSha256, activatedAt: b.verifiedAt });
    this.o.onActive?.(b);
  }

  private async stageAndSmoke(b: { modelPath: string; definition: BundleDefinition; info?: BundleInfo } | InstalledBundle, signal?: AbortSignal): Promise<StagedModel> {
    const { runtime, logger } = this.o;
    const info = 'info' in b && b.info ? b.info : bundleInfoOf(b as InstalledBundle);
    const staged = await this.step(runtime.stage(b.modelPath, b.definition, info), 'MODEL_LOAD_FAILED', 'loading the model', signal, (s) => runtime.discard(s));
    try {
      const vectors = b.definition.smoke.vectors;
      if (vectors.length === 0) logger.warn({ counter: info.counter }, 'bundle has no smoke vectors; only the load was checked');
      const r = await this.step(runSmokeVectors(staged.run, vectors, b.definition.smoke.tolerance), 'SMOKE_TEST_FAILED', 'running the smoke vectors', signal);
      if (!r.ok) throw new UpdateError('SMOKE_TEST_FAILED', r.failures.slice(0, 3).map((f) => f.message).join('; '));
      return staged;
    } catch (err) {
      await runtime.discard(staged).catch(() => {});
      throw err;
    }
  }

  /** Bounds one step by `stepTimeoutMs` and the update's signal; a late result is cleaned up. */
  private step<T>(p: Promise<T>, code: string, what: string, signal?: AbortSignal, cleanup?: (v: T) => unknown): Promise<T> {
    return boundedStep(p, { ms: this.o.config.stepTimeoutMs, code, what, signal, cleanup });
  }

  /** What the local API's /v1/status shows about updates. */
  status() {
    return {
      running: this.running ? { counter: this.running.job.manifest.counter, phase: this.running.phase } : this.inProbation ? { counter: this.activeBundle?.manifest.counter ?? null, phase: 'probation' } : null,
      pending: this.pending ? { counter: this.pending.manifest.counter } : null,
      droppedDesired: this.dropped,
    };
  }

  async stop(): Promise<void> {
    this.stopCtl.abort(new UpdateError('STOPPING', 'agent stopping'));
    await this.chain.catch(() => {});
    await this.worker;
    await this.probationRun;
  }
}

/** Same files, byte for byte (path, size, sha256): a manifest that changes nothing but its signature and settings. */
function sameFiles(a: DeploymentManifest, b: DeploymentManifest): boolean {
  const key = (m: DeploymentManifest) => m.files.map((f) => `${f.path}\u0000${f.size}\u0000${f.sha256}`).sort().join('\n');
  return key(a) === key(b);
}
