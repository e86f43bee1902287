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
import type { DeploymentManifest } from '../firmware-bundles/manifest.ts';
import { TERMINAL_STATES, type UpdateState } from '../protocol/messages/reported.ts';
import type { InstalledBundle } from './bundle-store.ts';
import type { AgentState } from './state-store.ts';
import { checkDesired, manifestDigest, type DesiredContext, type UpdateJob } from './desired-check.ts';
import type { StagedModel } from './model-runtime.ts';
import { toUpdateError, UpdateError } from './update-error.ts';
import { recordHandled, type UpdateDeps } from './update/deps.ts';
import { installBundle, settleProbation, swapModel, watchNewBundle } from './update/activate.ts';
import { recordAdoption, relinkServingBundle, sameFiles } from './update/adopt.ts';
import { bootInstalledBundle } from './update/boot.ts';
import { downloadBundleFiles } from './update/download.ts';
import { splayDelayMs } from './update/splay.ts';
import { sleep } from './backoff.ts';
import { manifestBundleInfo, stageAndSmoke, verifyDownloadedBundle } from './update/stage.ts';

export { manifestDigest } from './desired-check.ts';
export { UpdateError } from './update-error.ts';

export interface ReconcilerOptions extends UpdateDeps {
  /** Called whenever the serving bundle (or its signed manifest) changes: boot, activation, rollback, re-signed manifest. */
  onActive?(bundle: InstalledBundle): void;
}

const EARLY_PHASES: ReadonlySet<UpdateState> = new Set(['downloading', 'verifying', 'staging']);
const SUPERSEDED = 'SUPERSEDED';
/** Failures worth trying again when the same manifest is delivered again (reconnect, restart). */
const RETRYABLE = new Set(['DOWNLOAD_FAILED']);

/**
 * A manifest that was activated here, is still the newest one activated (nothing newer ran since),
 * but no longer serves (the device moved off it without a newer manifest: a fallback at start, a
 * bundle removed by hand, a rollback by an older agent's unsigned command). The desired state still
 * names it, so it is installed again instead of being ignored as "already handled" — a device never
 * stays on a bundle that its newest signed manifest does not name.
 */
export function reactivatable(s: Readonly<AgentState>, digest: string): boolean {
  const last = s.handled.findLast((h) => h.digest === digest);
  return last?.outcome === 'active' && last.counter >= s.highWaterCounter;
}

/** The update in progress. `downloadAt`: set while it waits out its download splay (epoch ms the download starts). */
interface RunningUpdate {
  job: UpdateJob;
  ctl: AbortController;
  phase: UpdateState;
  downloadAt?: number;
}

export class Reconciler {
  private chain: Promise<void> = Promise.resolve();
  private pending: UpdateJob | null = null;
  private running: RunningUpdate | null = null;
  private worker: Promise<void> | null = null;
  private activeBundle: InstalledBundle | null = null;
  private activeDigest: string | null = null;
  private readonly stopCtl = new AbortController();
  /** Why the reconciler stopped (null: running). A plain field: the first read of `stopCtl.signal` creates the
   * signal (tens of µs), and that read fell on each device's first desired message. */
  private stopped: UpdateError | null = null;
  private probationRun: Promise<void> | null = null;
  /** The newest key list's write (never rejects). */
  private keylistWrite: Promise<void> = Promise.resolve();
  /** A newer key list noted in memory to ride with the next state write (not on disk yet, perhaps). */
  private keylistNoted = false;
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
    await bootInstalledBundle(this.o, (b) => this.setActive(b));
    const activeCounter = this.activeBundle?.manifest.counter ?? 0;
    if (activeCounter > s.highWaterCounter || (s.probation && s.probation.dir !== this.activeBundle?.name)) {
      await state.update((st) => {
        st.highWaterCounter = Math.max(st.highWaterCounter, activeCounter);
        if (st.probation && st.probation.dir !== this.activeBundle?.name) st.probation = null;
      });
    }
    const last = state.get().transitions.at(-1);
    // The last terminal transition speaks for the device only if it is about the serving bundle or a
    // newer one: a kill between installing a bundle (e.g. adopting a re-signed manifest) and recording
    // it leaves an older update's `idle`/`failed` last, and reporting that would hide a serving bundle.
    const aboutOlder = this.activeBundle !== null && last?.counter !== undefined && last.counter < activeCounter;
    const lastState = last && TERMINAL_STATES.has(last.state) && last.state !== 'active' && !aboutOlder ? last.state : this.activeBundle ? 'active' : 'idle';
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

  private async onDesired(payload: Buffer): Promise<void> {
    const { state, reporter, logger } = this.o;
    if (this.stopped || payload.length === 0) return;
    const s = state.get();
    const v = checkDesired(payload, {
      pinnedRoot: this.o.pinnedRoot,
      deviceId: this.o.deviceId,
      agentVersion: this.o.agentVersion,
      storedKeylist: s.keylist as DesiredContext['storedKeylist'],
      floor: Math.max(s.highWaterCounter, this.activeBundle?.manifest.counter ?? 0),
      reinstall: s.reinstall,
      mayReinstall: (d) => d !== this.activeDigest && this.running?.job.digest !== d && this.pending?.digest !== d && reactivatable(s, d),
      known: (d) => d === this.activeDigest || state.isHandled(d) || this.running?.job.digest === d || this.pending?.digest === d,
      now: new Date(),
    });
    if (v.kind === 'drop') {
      this.dropped++;
      logger.warn({ why: v.why }, 'dropped a malformed desired message');
      return;
    }
    if (v.keylistToStore) {
      // Trusted in memory at once; the verdict never waits for its write. With a verdict that writes
      // anyway it rides along: a refusal's `failed`, an accepted update's first durable write (the
      // probation record before a bundle is installed), an adoption's (adopt() writes it first), so
      // nothing irreversible happens before it is on disk and a fan-out costs a device no extra write
      // (in a simulator's fan-out, that write was most of the devices' file work). Otherwise it is
      // written at once.
      const list = v.keylistToStore;
      const version = (list.signed as { version?: number }).version;
      if (v.kind === 'accept' || v.kind === 'reject') {
        state.note((st) => void (st.keylist = list));
        this.keylistNoted = true;
        logger.info({ version }, 'key list updated (written with the verdict)');
      } else {
        this.keylistWrite = state.update((st) => void (st.keylist = list)).then(
          () => logger.info({ version }, 'key list updated'),
          (err) => logger.error({ err, version }, 'could not write the key list (the next state write retries it)'),
        );
      }
      reporter.flush();
    }
    if (v.kind === 'ignore') {
      logger.debug({ why: v.why }, 'desired message needs no action');
      return;
    }
    if (v.kind === 'reject') {
      const { digest } = v;
      // The verdict is written together with the `failed` transition (one write).
      if (digest) state.note((st) => recordHandled(st, digest, v.counter ?? -1, v.code));
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
        while (this.pending && !this.stopped) {
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
    await this.o.state.update((s) => recordHandled(s, job.digest, job.manifest.counter, outcome));
  }

  /** Records a verdict to be written with the terminal transition that follows it. */
  private noteHandled(job: UpdateJob, outcome: string): void {
    this.o.state.note((s) => recordHandled(s, job.digest, job.manifest.counter, outcome));
  }

  private async run(job: UpdateJob): Promise<void> {
    if (this.activeBundle && sameFiles(job.manifest, this.activeBundle.manifest)) return this.adopt(job, this.activeBundle);
    const { bundles, reporter, runtime, logger, config } = this.o;
    // One controller, aborted by a newer desired state, the deadline or stop() (which aborts the running
    // update's): AbortSignal.any() per update cost a fan-out's simulator measurable CPU and GC (weak refs).
    const ctl = new AbortController();
    if (this.stopped) ctl.abort(this.stopped);
    const signal = ctl.signal;
    const running: RunningUpdate = { job, ctl, phase: 'downloading' };
    this.running = running;
    const m = job.manifest;
    const ids = { counter: m.counter, bundleId: m.bundle.id };
    const phase = async (p: UpdateState) => {
      signal.throwIfAborted();
      running.phase = p;
      await reporter.transition(p, ids);
    };
    const deadline = setTimeout(() => ctl.abort(new UpdateError('TIMEOUT', `update did not finish within ${config.updateTimeoutMs} ms (while ${running.downloadAt ? 'waiting to download' : running.phase})`)), config.updateTimeoutMs);
    const giveUpAt = Date.now() + config.updateTimeoutMs;
    let staged: StagedModel | null = null;
    let installed = false;
    const started = Date.now();
    try {
      // The splay: reported as `downloading` with the time the download starts; a newer desired state
      // aborts the wait like a download in progress (nothing was fetched), the time bound covers it.
      const waitMs = splayDelayMs(config.downloadSplayMs, config.updateTimeoutMs);
      if (waitMs > 0) {
        running.downloadAt = Date.now() + waitMs;
        await reporter.transition('downloading', { ...ids, reason: 'DOWNLOAD_SPLAY', downloadWaitUntil: new Date(running.downloadAt).toISOString() });
        await sleep(waitMs, signal);
        running.downloadAt = undefined;
      }
      await phase('downloading');
      const dir = await bundles.stagingDir(job.name);
      await downloadBundleFiles(this.o, m, dir, signal, giveUpAt);

      await phase('verifying');
      const definition = await verifyDownloadedBundle(dir, m, this.o.agentVersion);

      await phase('staging');
      staged = await stageAndSmoke(this.o, { modelPath: path.join(dir, 'model.onnx'), definition, info: manifestBundleInfo(m) }, signal);

      // Activating: past this point the update is not superseded any more.
      await phase('activating');
      await installBundle(this.o, job);
      installed = true;
      await swapModel(this.o, staged);
      staged = null;
      const b = await bundles.read(job.name);
      this.setActive(b);
      // On disk with the next write (at latest the probation's verdict); until then a restart reads the
      // floor from `current`, which names this manifest now (start()).
      this.o.state.note((s) => void (s.highWaterCounter = Math.max(s.highWaterCounter, m.counter)));
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

  /** A re-signed manifest for the files already serving (see update/adopt.ts): reported as `activating`, then `active`. */
  private async adopt(job: UpdateJob, from: InstalledBundle): Promise<void> {
    this.running = { job, ctl: new AbortController(), phase: 'activating' };
    try {
      // Relinking installs no state write of its own first: the key list that verified the manifest is on disk before.
      await this.keylistWrite;
      if (this.keylistNoted) {
        this.keylistNoted = false;
        await this.o.state.update(() => {});
      }
      this.setActive(await relinkServingBundle(this.o, job, from));
    } catch (err) {
      this.running = null;
      await this.failed(job, new UpdateError('ACTIVATION_FAILED', `adopting the re-signed manifest: ${(err as Error).message}`), 'activating', false);
      return;
    }
    this.running = null;
    await recordAdoption(this.o, job);
  }

  private async failed(job: UpdateJob, err: unknown, phaseAt: UpdateState, installed: boolean): Promise<void> {
    const { reporter, logger, bundles } = this.o;
    const m = job.manifest;
    const ids = { counter: m.counter, bundleId: m.bundle.id };
    if (this.stopped) {
      // Stopping: leave everything for the next start (partial downloads resume, the retained
      // desired message brings the manifest back).
      logger.info({ counter: m.counter, phase: phaseAt }, 'update interrupted by stop');
      return;
    }
    const e = toUpdateError(err, phaseAt);
    if (e.code === SUPERSEDED) {
      this.noteHandled(job, SUPERSEDED);
      await reporter.transition('idle', { ...ids, reason: SUPERSEDED, message: e.message, error: false });
      await bundles.prune(this.keepWhilePruning()).catch(() => {});
      return;
    }
    if (!RETRYABLE.has(e.code)) {
      this.noteHandled(job, e.code);
      // A failed download keeps its part files so the next delivery resumes; the rest goes.
      if (!installed) await bundles.prune(this.keepWhilePruning()).catch(() => {});
    }
    await reporter.transition('failed', { ...ids, reason: e.code, message: e.message });
  }

  private async runProbation(m: DeploymentManifest, digest: string): Promise<void> {
    this.inProbation = true;
    let verdict;
    try {
      verdict = await watchNewBundle(this.o, m, this.stopCtl.signal);
    } finally {
      this.inProbation = false;
    }
    await settleProbation(this.o, m, digest, verdict, { keep: () => this.keepWhilePruning(), setActive: (b) => this.setActive(b) });
  }

  /** The staging directory of the update waiting, which pruning must spare. */
  private keepWhilePruning(): Set<string> {
    return new Set(this.pending ? [this.pending.name] : []);
  }

  private setActive(b: InstalledBundle): void {
    this.activeBundle = b;
    this.activeDigest = manifestDigest(b.manifestEnvelope.signed);
    this.o.reporter.setActive({ bundleId: b.manifest.bundle.id, bundleName: b.manifest.bundle.name, model: b.manifest.bundle.model, counter: b.manifest.counter, modelSha256: b.modelSha256, activatedAt: b.verifiedAt });
    this.o.onActive?.(b);
  }

  /** What the local API's /v1/status shows about updates. */
  status() {
    return {
      running: this.running
        ? { counter: this.running.job.manifest.counter, phase: this.running.downloadAt ? 'waiting' : this.running.phase, ...(this.running.downloadAt ? { downloadAt: new Date(this.running.downloadAt).toISOString() } : {}) }
        : this.inProbation ? { counter: this.activeBundle?.manifest.counter ?? null, phase: 'probation' } : null,
      pending: this.pending ? { counter: this.pending.manifest.counter } : null,
      droppedDesired: this.dropped,
    };
  }

  async stop(): Promise<void> {
    this.stopped = new UpdateError('STOPPING', 'agent stopping');
    this.stopCtl.abort(this.stopped);
    this.running?.ctl.abort(this.stopped);
    await this.chain.catch(() => {});
    await this.keylistWrite;
    await this.worker;
    await this.probationRun;
  }
}
