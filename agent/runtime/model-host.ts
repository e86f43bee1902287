/**
 * ModelHost: the main thread's side of inference. Sessions live in worker threads
 * (`inference-worker.ts`); the host names each loaded model with a `ModelHandle`, keeps one of them
 * active, and pipelines requests to the workers so the ~100 µs thread round trip is not paid serially.
 *
 * Guarantees:
 * - `activate(h)` is a synchronous pointer swap: a request takes its handle when `infer()` is
 *   called, so requests already issued finish on the old session and later ones use the new one.
 * - `release(h)` frees the sessions only after every request on `h` (and every `hold`) is done.
 * - a worker that dies is restarted and gets every registered model back (the active one first),
 *   from the model file the host holds open (model-file.ts: the path it was loaded from may have been
 *   renamed or deleted since, as activation does); only the requests that were on it fail, with
 *   WORKER_CRASHED. Requests still queued in the host are sent to the new worker.
 * - `stop()` drains (bounded), releases sessions and terminates the workers: no handles remain.
 * - with `thread: 'auto'` each model is placed by its own cost (thread-choice.ts): loaded in the
 *   worker, its runs timed there, and a cheap one moved to the caller's thread: a second session
 *   is loaded there, runs issued from then on go to it (a synchronous switch), the runs already on the
 *   worker finish there, and then the worker's session is released. No run is lost or failed by the
 *   move. A worker left with no model ends (its ≈ 21 MB with it) and the next load starts one again.
 *
 * Ownership: `infer()` transfers the feeds' ArrayBuffers of 4 KB and more to the worker (no copy),
 * so the caller's typed arrays are detached once the request is sent; smaller ones are copied into
 * the message, which costs less than a transfer (tensor.ts, TRANSFER_MIN_BYTES). Views into a
 * larger buffer (e.g. Node's Buffer pool) are copied, so nothing else is ever detached.
 *
 * @example
 * const host = new ModelHost({ poolSize: 1 });
 * await host.start();
 * const h = await host.load('/var/lib/flotilla-agent/bundles/12/model.onnx');
 * host.activate(h);
 * const out = await host.infer({ features: { type: 'float32', dims: [1, 8], data: new Float32Array(8) } });
 * await host.stop();
 */
import { resolve as resolvePath } from 'node:path';
import { RuntimeError } from './errors.ts';
import { ModelFile } from './model-file.ts';
import { checkFeeds, prepareTransfer, type HostTensor, type TensorMeta } from './tensor.ts';
import { InlineSlot } from './inline-slot.ts';
import { WorkerSlot, type Pending } from './worker-slot.ts';
import { chooseThread, RunTimes, tooLargeToMove, windowsBeforeNextChoice, type InferenceThread, type Placement } from './thread-choice.ts';
import type { ModelInfo, WorkerSessionOptions } from './worker-protocol.ts';

/** A loaded model. Opaque to callers except for its metadata. */
export interface ModelHandle {
  readonly id: number;
  readonly modelPath: string;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputs: readonly TensorMeta[];
  readonly outputs: readonly TensorMeta[];
  /** The options its sessions were created with on top of the worker's defaults (host's, then the bundle's). */
  readonly sessionOptions: WorkerSessionOptions;
}

export type HostEvent =
  | { type: 'worker-crashed'; worker: number; exitCode: number; error?: string; failedRequests: number }
  | { type: 'worker-restarted'; worker: number; reloaded: number; failedReloads: Array<{ handle: number; error: string }> }
  | { type: 'worker-restart-failed'; worker: number; error: string }
  /** `thread: 'auto'`: a model's thread was chosen (or it was moved). */
  | { type: 'placed'; handle: number; thread: InferenceThread; reason: string }
  /** `thread: 'auto'`: no model was left in the worker, so it ended. */
  | { type: 'worker-retired'; worker: number };

export interface ModelHostOptions {
  /** Worker threads, each holding every loaded model. 1 suits a 2-core device (the main thread needs the other core). */
  poolSize?: number;
  /** Requests sent to one worker and not yet answered; more wait in the host. */
  maxInFlightPerWorker?: number;
  /** Most requests carried by one message. */
  maxBatch?: number;
  /** Gather the requests issued in the same tick into one message (default true). */
  coalesce?: boolean;
  /** onnxruntime session options; `intraOpNumThreads` defaults to 1 (see below). */
  sessionOptions?: WorkerSessionOptions;
  /** How long `stop()` waits for in-flight requests before failing them. */
  stopTimeoutMs?: number;
  /** First delay before restarting a crashed worker; doubles while it keeps crashing (max 5 s). */
  restartDelayMs?: number;
  /** Crash/restart notifications, for logs and metrics. */
  onEvent?: (event: HostEvent) => void;
  /**
   * Start the worker threads on the first `load()` instead of in `start()` (default false). A worker
   * with onnxruntime costs ≈ 22 MB RSS; an agent with no model yet need not pay it.
   */
  spawnOnLoad?: boolean;
  /**
   * Where sessions run: 'worker' (default) in worker threads, isolated from the caller's event loop;
   * 'main' on the caller's thread (inline-slot.ts), which saves the thread hand-offs (~2 × 100 µs
   * a request here) but blocks the loop while a run lasts: for small, fast models. `poolSize` and the
   * crash/restart machinery do not apply to 'main'. 'auto': per model, by its measured run time
   * (thread-choice.ts): starts in a worker, moves to the caller's thread when its runs are cheap.
   */
  thread?: InferenceThread | 'auto';
}

export interface InferOptions {
  /** Run on this handle instead of the active one (e.g. smoke tests on a staged model). */
  handle?: ModelHandle;
  /**
   * Dim 0 of the feeds is a batch of independent rows (tabular rows, images): the worker may merge
   * this run with others of the same model sent in the same message into one session.run
   * (merge-runs.ts). Leave it off for raw tensors, whose dim 0 may mean something else.
   */
  mergeable?: boolean;
}

interface HandleState {
  handle: ModelHandle;
  inflight: number;
  holds: number;
  releasing?: Promise<void>;
  drainWaiters: Array<() => void>;
  /** Where its runs go now (it changes once at most: worker → main, with `thread: 'auto'`). */
  thread: InferenceThread;
  /** Which threads hold a session of it (both while a move drains the worker). */
  onWorker: boolean;
  onMain: boolean;
  /** Its runs sent to (or queued for) a worker and not settled: the move waits for them. */
  workerRuns: number;
  workerDrainWaiters: Array<() => void>;
  times: RunTimes;
  /** `thread: 'auto'`, in the worker: its runs are timed and its thread chosen again every `AUTO_RUNS`. */
  measuring: boolean;
  /** Choices made so far (the first is announced). */
  choices: number;
  /** Complete windows of timed runs to let pass before the next choice (thread-choice.ts). */
  skipWindows: number;
  /** Its file, held open while it is loaded in workers: what a restarted worker or the move to the main thread loads. */
  file?: ModelFile;
  reason: string;
  /** The move to the main thread, under way or done (release waits for it). */
  moving?: Promise<void>;
}

export class ModelHost {
  private readonly opts: Required<Omit<ModelHostOptions, 'onEvent' | 'sessionOptions'>> & Pick<ModelHostOptions, 'onEvent'> & { sessionOptions: WorkerSessionOptions };
  /** The workers' first start (in `start()`, or in the first `load()` with `spawnOnLoad`). */
  private spawning: Promise<void> | undefined;
  /** Every worker has started once: from then on a crash means restart. */
  private spawned = false;
  private state: 'idle' | 'starting' | 'running' | 'stopping' | 'stopped' = 'idle';
  private workers: WorkerSlot[] = [];
  /** The caller's thread ('main' and 'auto'). */
  private inline: InlineSlot | undefined;
  /** Loads under way on the workers (they keep a worker from being retired). */
  private workerLoads = 0;
  /** Workers being ended because no model was left on them; a load waits for it. */
  private retiring: Promise<void> | undefined;
  private readonly handles = new Map<number, HandleState>();
  private activeId: number | undefined;
  private nextHandle = 0;
  private runsOutstanding = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(options: ModelHostOptions = {}) {
    this.opts = {
      poolSize: options.poolSize ?? 1,
      maxInFlightPerWorker: options.maxInFlightPerWorker ?? 64,
      maxBatch: options.maxBatch ?? 32,
      coalesce: options.coalesce ?? true,
      // One intra-op thread per worker by default: on 2 cores a second onnxruntime thread competes
      // with the main thread (MQTT, HTTP, timers) for the other core. Measured here during a heavy
      // burst: the main thread got 15–40 % less CPU with 2 threads, and the burst was not
      // consistently faster. Raise it on bigger devices through `sessionOptions`.
      sessionOptions: { intraOpNumThreads: 1, interOpNumThreads: 1, ...options.sessionOptions },
      stopTimeoutMs: options.stopTimeoutMs ?? 5000,
      restartDelayMs: options.restartDelayMs ?? 50,
      spawnOnLoad: options.spawnOnLoad ?? false,
      thread: options.thread ?? 'worker',
      onEvent: options.onEvent,
    };
  }

  async start(): Promise<void> {
    if (this.state !== 'idle' && this.state !== 'stopped') throw new RuntimeError('NOT_RUNNING', `cannot start a model host that is ${this.state}`);
    this.state = 'starting';
    this.inline = this.opts.thread === 'worker' ? undefined : new InlineSlot(0, { maxBatch: this.opts.maxBatch, coalesce: this.opts.coalesce, onRunSettled: (p, runUs) => this.runDone(p, 'main', runUs) });
    this.inline?.markReady();
    this.workers = this.opts.thread === 'main' ? [] : this.newWorkerSlots();
    this.spawning = undefined;
    this.spawned = false;
    if (this.opts.spawnOnLoad) {
      this.state = 'running';
      return;
    }
    try {
      await this.spawnWorkers();
    } catch (err) {
      await Promise.all(this.slots().map((s) => s.close(err as Error)));
      this.state = 'stopped';
      throw err;
    }
    this.state = 'running';
  }

  private newWorkerSlots(): WorkerSlot[] {
    return Array.from(
      { length: Math.max(1, this.opts.poolSize) },
      (_, index) =>
        new WorkerSlot(index, {
          maxInFlight: this.opts.maxInFlightPerWorker,
          maxBatch: this.opts.maxBatch,
          coalesce: this.opts.coalesce,
          onRunSettled: (p, runUs) => this.runDone(p, 'worker', runUs),
          onCrash: (slot, code, failed) => this.onCrash(slot, code, failed),
        }),
    );
  }

  private slots(): Array<WorkerSlot | InlineSlot> {
    return this.inline ? [...this.workers, this.inline] : this.workers;
  }

  /** Starts every worker once; a failed first start is retried by the next call. */
  private spawnWorkers(): Promise<void> {
    this.spawning ??= Promise.all(this.workers.filter((s) => s.state !== 'ready').map(async (s) => s.markReady(await s.spawn()))).then(
      () => {
        this.spawned = true;
      },
      (err) => {
        this.spawning = undefined;
        throw err;
      },
    );
    return this.spawning;
  }

  /** Drains (up to `stopTimeoutMs`), fails what is left with NOT_RUNNING, releases sessions, ends the workers. */
  async stop(): Promise<void> {
    if (this.state === 'idle' || this.state === 'stopped' || this.state === 'stopping') return;
    this.state = 'stopping';
    await this.waitIdle(this.opts.stopTimeoutMs);
    const stopped = new RuntimeError('NOT_RUNNING', 'the model host stopped before this request finished');
    await this.retiring;
    // Each worker finishes the run it is in, releases its sessions and exits (WorkerSlot.close).
    await Promise.all(this.slots().map((s) => s.close(stopped)));
    await Promise.all([...this.handles.values()].map((st) => st.file?.close()));
    this.handles.clear();
    this.activeId = undefined;
    this.state = 'stopped';
  }

  /**
   * Loads a model in every worker, with `sessionOptions` (a bundle's) on top of the host's. Throws
   * MODEL_LOAD_FAILED (the active model is untouched).
   */
  async load(modelPath: string, sessionOptions: WorkerSessionOptions = {}): Promise<ModelHandle> {
    this.assertRunning();
    const thread: InferenceThread = this.opts.thread === 'main' ? 'main' : 'worker';
    if (thread === 'main') return this.loadOn([this.inline!], 'main', modelPath, sessionOptions);
    this.workerLoads++;
    try {
      await this.retiring;
      // Workers start on the first load (`spawnOnLoad`), and again after one was retired ('auto').
      if (this.opts.spawnOnLoad || !this.spawned) {
        try {
          await this.spawnWorkers();
        } catch (err) {
          throw new RuntimeError('MODEL_LOAD_FAILED', `cannot start the inference worker: ${(err as Error).message}`);
        }
      }
      return await this.loadOn(this.workers, 'worker', modelPath, sessionOptions);
    } finally {
      this.workerLoads--;
      this.maybeRetireWorkers();
    }
  }

  private async loadOn(slots: Array<WorkerSlot | InlineSlot>, thread: InferenceThread, modelPath: string, sessionOptions: WorkerSessionOptions): Promise<ModelHandle> {
    const id = ++this.nextHandle;
    const path = resolvePath(modelPath);
    const options = { ...this.opts.sessionOptions, ...sessionOptions };
    // Opened before the sessions load, so it is the file they loaded. Not needed on the main thread
    // ('main': nothing restarts or moves there).
    let file: ModelFile | undefined;
    if (thread === 'worker') {
      try {
        file = await ModelFile.open(path);
      } catch (err) {
        throw new RuntimeError('MODEL_LOAD_FAILED', `cannot load model ${path}: ${(err as Error).message}`, { modelPath: path });
      }
    }
    const results = await Promise.allSettled(slots.map((s) => s.request({ op: 'load', id: 0, handle: id, modelPath: path, sessionOptions: options })));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      results.forEach((r, i) => r.status === 'fulfilled' && slots[i].request({ op: 'release', id: 0, handle: id }).catch(() => {}));
      await file?.close();
      throw failed.reason instanceof RuntimeError ? failed.reason : new RuntimeError('MODEL_LOAD_FAILED', String(failed.reason));
    }
    const info = (results[0] as PromiseFulfilledResult<ModelInfo>).value;
    const handle: ModelHandle = Object.freeze({ id, modelPath: path, ...info, sessionOptions: Object.freeze(options) });
    const auto = this.opts.thread === 'auto';
    const tooLarge = auto && file ? tooLargeToMove(file.size) : undefined;
    const reason = !auto ? `set to ${thread}` : (tooLarge ?? 'measuring its first runs in the worker');
    const measuring = auto && !tooLarge;
    this.handles.set(id, { handle, inflight: 0, holds: 0, drainWaiters: [], thread, onWorker: thread === 'worker', onMain: thread === 'main', workerRuns: 0, workerDrainWaiters: [], times: new RunTimes(), measuring, choices: auto && !measuring ? 1 : 0, skipWindows: 0, file, reason });
    if (tooLarge) this.opts.onEvent?.({ type: 'placed', handle: id, thread, reason });
    return handle;
  }

  /** Makes `handle` the default for `infer()`; returns the previously active handle. */
  activate(handle: ModelHandle): ModelHandle | undefined {
    this.assertRunning();
    const st = this.handles.get(handle.id);
    if (!st || st.releasing) throw new RuntimeError('UNKNOWN_HANDLE', `model handle ${handle.id} is not loaded (released or never loaded here)`);
    const previous = this.activeId === undefined ? undefined : this.handles.get(this.activeId)?.handle;
    this.activeId = handle.id;
    return previous;
  }

  get active(): ModelHandle | undefined {
    return this.activeId === undefined ? undefined : this.handles.get(this.activeId)?.handle;
  }

  /** Runs issued and not answered yet (sent to a worker or waiting in the host): the queue depth telemetry reports. */
  get queueDepth(): number {
    return this.runsOutstanding;
  }

  /** Where `handle` runs now and why (undefined once released). */
  placement(handle: ModelHandle): Placement | undefined {
    const st = this.handles.get(handle.id);
    if (!st) return undefined;
    const runs = st.times.summary();
    return { mode: this.opts.thread, thread: st.thread, reason: st.choices > 0 || !st.measuring ? st.reason : `measuring its first runs in the worker (${runs?.timed ?? 0} timed)`, choices: st.choices, ...(runs && { runs }) };
  }

  /** Keeps `handle` usable (and loaded) until the returned function is called, e.g. across async preprocessing. */
  hold(handle: ModelHandle): () => void {
    const st = this.handles.get(handle.id);
    if (!st || st.releasing) throw new RuntimeError('UNKNOWN_HANDLE', `model handle ${handle.id} is not loaded (released or never loaded here)`);
    st.holds++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      st.holds--;
      this.maybeDrained(st);
    };
  }

  /** Frees the sessions of `handle` once its in-flight requests and holds are done. Idempotent. */
  release(handle: ModelHandle): Promise<void> {
    if (handle.id === this.activeId) return Promise.reject(new RuntimeError('HANDLE_ACTIVE', `model handle ${handle.id} is active; activate another model before releasing it`));
    const st = this.handles.get(handle.id);
    if (!st) return Promise.resolve();
    st.releasing ??= (async () => {
      await st.moving;
      await new Promise<void>((res) => {
        st.drainWaiters.push(res);
        this.maybeDrained(st);
      });
      this.handles.delete(handle.id);
      const slots = [...(st.onWorker ? this.workers : []), ...(st.onMain && this.inline ? [this.inline] : [])];
      st.onWorker = st.onMain = false;
      await Promise.all(slots.map((s) => (s.state === 'stopped' ? undefined : s.request({ op: 'release', id: 0, handle: handle.id }).catch(() => {}))));
      for (const s of this.workers) s.broken.delete(handle.id);
      await st.file?.close();
      st.file = undefined;
      this.maybeRetireWorkers();
    })();
    return st.releasing;
  }

  /**
   * Runs the model: the active one, or `options.handle`. The handle is taken now (synchronously), so
   * an `activate()` after this call does not affect it. Rejects with INVALID_INPUT (feeds do not fit
   * the model), INFERENCE_FAILED, WORKER_CRASHED, NO_ACTIVE_MODEL, UNKNOWN_HANDLE or NOT_RUNNING.
   */
  infer(feeds: Record<string, HostTensor>, options: InferOptions = {}): Promise<Record<string, HostTensor>> {
    try {
      this.assertRunning();
      const id = options.handle?.id ?? this.activeId;
      if (id === undefined) throw new RuntimeError('NO_ACTIVE_MODEL', 'no model is active');
      const st = this.handles.get(id);
      // A handle being released still serves its holders (they took it before the release).
      if (!st || (st.releasing && st.holds === 0)) throw new RuntimeError('UNKNOWN_HANDLE', `model handle ${id} is not loaded (released or never loaded here)`);
      checkFeeds(st.handle.inputs, feeds);
      const wire: Record<string, HostTensor> = {};
      for (const [name, t] of Object.entries(feeds)) wire[name] = { type: t.type, dims: Array.from(t.dims), data: t.data };
      const transfer: ArrayBuffer[] = [];
      prepareTransfer(wire, transfer);
      const slot = this.pickSlot(st);
      if (slot !== this.inline) st.workerRuns++;
      st.inflight++;
      this.runsOutstanding++;
      return new Promise((resolve, reject) => slot.enqueue(id, wire, transfer, { resolve: resolve as Pending['resolve'], reject, run: id }, options.mergeable === true));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Counters for telemetry and tests. */
  stats(): { state: string; activeHandle?: number; handles: number; workers: Array<ReturnType<WorkerSlot['info']>> } {
    return { state: this.state, activeHandle: this.activeId, handles: this.handles.size, workers: this.slots().map((s) => s.info()) };
  }

  /** Worker threads running now (0 with `thread: 'main'`, and with 'auto' once no model is left in one). */
  get workerThreads(): number {
    return this.workers.filter((s) => s.info().threadId !== undefined).length;
  }

  /**
   * Test hook: worker `index` dies at once with an uncaught exception (the host must recover).
   * Runs already executing in onnxruntime finish first: JS cannot interrupt a native call.
   */
  simulateCrash(index = 0): void {
    this.workers[index]?.crash();
  }

  // ---- placement ('auto') ----

  /** Another `AUTO_RUNS` of its runs are timed: choose its thread (thread-choice.ts); announced when it is the first choice or a move. */
  private place(st: HandleState): void {
    const choice = chooseThread(st.times.summary()!);
    st.reason = choice.reason;
    const first = ++st.choices === 1;
    if (choice.thread === 'worker' || !this.inline) {
      if (first) this.opts.onEvent?.({ type: 'placed', handle: st.handle.id, thread: 'worker', reason: choice.reason });
      st.skipWindows = windowsBeforeNextChoice(st.choices);
      return;
    }
    st.measuring = false;
    st.moving = this.moveToMain(st, choice.reason);
  }

  /**
   * A second session on this thread, then the switch (synchronous: runs issued from now on go to
   * it), then the worker's session is released once the runs already given to the worker are back.
   */
  private async moveToMain(st: HandleState, reason: string): Promise<void> {
    const id = st.handle.id;
    try {
      await this.inline!.request(await this.reloadRequest(st));
    } catch (err) {
      st.reason = `${reason.replace(/; moved to the agent's thread$/, '')}, but loading it on the agent's thread failed (${(err as Error).message}): stays in the worker`;
      this.opts.onEvent?.({ type: 'placed', handle: id, thread: 'worker', reason: st.reason });
      return;
    }
    st.onMain = true;
    if (st.releasing || this.state !== 'running') return; // release() frees both sessions
    st.thread = 'main';
    this.opts.onEvent?.({ type: 'placed', handle: id, thread: 'main', reason });
    await new Promise<void>((res) => {
      st.workerDrainWaiters.push(res);
      this.maybeWorkerDrained(st);
    });
    st.onWorker = false;
    await Promise.all(this.workers.map((s) => (s.state === 'stopped' ? undefined : s.request({ op: 'release', id: 0, handle: id }).catch(() => {}))));
    for (const s of this.workers) s.broken.delete(id);
    // Nothing restarts or moves on the main thread: the file need not stay open.
    if (!st.releasing) {
      await st.file?.close();
      st.file = undefined;
    }
    this.maybeRetireWorkers();
  }

  /**
   * A load of `st`'s model from its open file: the bytes read through it, external data from its
   * directory (model-file.ts). Read per load and handed over, so nothing keeps them afterwards.
   */
  private async reloadRequest(st: HandleState): Promise<Extract<Parameters<WorkerSlot['post']>[0], { op: 'load' }>> {
    const { id, modelPath, sessionOptions } = st.handle;
    if (!st.file) return { op: 'load', id: 0, handle: id, modelPath, sessionOptions };
    const modelBytes = await st.file.read().catch((err: Error) => {
      throw new RuntimeError('MODEL_LOAD_FAILED', `cannot read model ${modelPath} again: ${err.message}`, { modelPath });
    });
    return { op: 'load', id: 0, handle: id, modelPath, sessionOptions, modelBytes, externalDataFolder: st.file.folder };
  }

  /** 'auto': a worker that holds no model and loads none ends; the next load starts one. */
  private maybeRetireWorkers(): void {
    if (this.opts.thread !== 'auto' || this.state !== 'running' || !this.spawned || this.workerLoads > 0 || this.retiring) return;
    for (const st of this.handles.values()) if (st.onWorker) return;
    const old = this.workers;
    this.workers = this.newWorkerSlots();
    this.spawning = undefined;
    this.spawned = false;
    const retired = new RuntimeError('NOT_RUNNING', 'the inference worker ended: no model was left on it');
    this.retiring = Promise.all(old.map((s) => s.close(retired))).then(() => {
      this.retiring = undefined;
      for (const s of old) this.opts.onEvent?.({ type: 'worker-retired', worker: s.index });
    });
  }

  // ---- crashes ----

  private onCrash(slot: WorkerSlot, exitCode: number, failedRequests: number): void {
    if (this.state === 'starting' || !this.spawned) return; // start() (or the first load()) reports it
    const now = Date.now();
    slot.crashes++;
    // A worker that keeps crashing (e.g. a model that kills it on load) is retried with backoff.
    const streak = now - slot.lastCrashAt < 10_000 ? Math.min(slot.crashes, 7) : 1;
    slot.lastCrashAt = now;
    this.opts.onEvent?.({ type: 'worker-crashed', worker: slot.index, exitCode, error: slot.lastError, failedRequests });
    const delay = Math.min(5000, this.opts.restartDelayMs * 2 ** (streak - 1));
    slot.restartTimer = setTimeout(() => void this.restart(slot), delay);
  }

  private async restart(slot: WorkerSlot): Promise<void> {
    slot.restartTimer = undefined;
    if ((this.state !== 'running' && this.state !== 'stopping') || slot.state === 'stopped') return;
    let generation: number;
    try {
      generation = await slot.spawn();
    } catch (err) {
      this.opts.onEvent?.({ type: 'worker-restart-failed', worker: slot.index, error: (err as Error).message });
      return; // the slot reported the exit: onCrash has scheduled the next attempt
    }
    // Runs stay queued (the slot is 'starting') until the models are back. Active model first: it
    // is what the queued requests most likely wait for.
    const ids = [...this.handles.values()].filter((st) => st.onWorker).map((st) => st.handle.id).sort((a, b) => Number(b === this.activeId) - Number(a === this.activeId));
    const failedReloads: Array<{ handle: number; error: string }> = [];
    for (const id of ids) {
      const st = this.handles.get(id);
      if (!st) continue;
      try {
        await slot.post(await this.reloadRequest(st));
      } catch (err) {
        if (!slot.isCurrent(generation)) return; // crashed again or stopped: the next restart reloads
        slot.broken.set(id, (err as Error).message);
        failedReloads.push({ handle: id, error: (err as Error).message });
      }
    }
    if (!slot.isCurrent(generation)) return;
    this.opts.onEvent?.({ type: 'worker-restarted', worker: slot.index, reloaded: ids.length - failedReloads.length, failedReloads });
    slot.markReady(generation);
  }

  // ---- accounting ----

  private pickSlot(st: HandleState): WorkerSlot | InlineSlot {
    if (st.thread === 'main') return this.inline!;
    const handle = st.handle.id;
    let best: WorkerSlot | undefined;
    for (const s of this.workers) {
      if (s.state === 'stopped' || s.broken.has(handle)) continue;
      if (!best || s.load < best.load) best = s;
    }
    if (best) return best;
    const why = this.workers.map((s) => s.broken.get(handle)).find(Boolean);
    throw new RuntimeError('MODEL_LOAD_FAILED', `model handle ${handle} could not be reloaded after a worker restart${why ? `: ${why}` : ''}`);
  }

  private runDone(p: Pending, thread: InferenceThread, runUs: number | undefined): void {
    if (p.run === undefined) return;
    const st = this.handles.get(p.run);
    if (st) {
      st.inflight--;
      if (thread === 'worker') {
        st.workerRuns--;
        this.maybeWorkerDrained(st);
      }
      if (runUs !== undefined && st.times.add(runUs) && st.measuring && thread === 'worker') {
        if (st.skipWindows > 0) st.skipWindows--;
        else this.place(st);
      }
      this.maybeDrained(st);
    }
    if (--this.runsOutstanding === 0 && this.idleWaiters.length > 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private maybeWorkerDrained(st: HandleState): void {
    if (st.workerRuns === 0 && st.workerDrainWaiters.length > 0) for (const w of st.workerDrainWaiters.splice(0)) w();
  }

  private maybeDrained(st: HandleState): void {
    if (st.inflight === 0 && st.holds === 0 && st.drainWaiters.length > 0) for (const w of st.drainWaiters.splice(0)) w();
  }

  private waitIdle(timeoutMs: number): Promise<void> {
    if (this.runsOutstanding === 0) return Promise.resolve();
    return withTimeout(new Promise<void>((res) => this.idleWaiters.push(res)), timeoutMs);
  }

  private assertRunning(): void {
    if (this.state !== 'running') throw new RuntimeError('NOT_RUNNING', `the model host is ${this.state}`);
  }
}

/** Resolves when `p` settles or after `ms`, whichever comes first; never leaves a timer behind. */
async function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([p.then(() => undefined, () => undefined), new Promise<void>((res) => (timer = setTimeout(res, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
