/**
 * ModelHost: the main thread's side of inference. Sessions live in worker threads
 * (`inference-worker.ts`); the host names each loaded model with a `ModelHandle`, keeps one of them
 * active, and pipelines requests to the workers so the ~100 µs thread round trip is not paid serially.
 *
 * Guarantees:
 * - `activate(h)` is a synchronous pointer swap: a request takes its handle when `infer()` is
 *   called, so requests already issued finish on the old session and later ones use the new one.
 * - `release(h)` frees the sessions only after every request on `h` (and every `hold`) is done.
 * - a worker that dies is restarted and gets every registered model back (the active one first);
 *   only the requests that were on it fail, with WORKER_CRASHED. Requests still queued in the host
 *   are sent to the new worker.
 * - `stop()` drains (bounded), releases sessions and terminates the workers: no handles remain.
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
import { checkFeeds, prepareTransfer, type HostTensor, type TensorMeta } from './tensor.ts';
import { InlineSlot } from './inline-slot.ts';
import { WorkerSlot, type Pending } from './worker-slot.ts';
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
  | { type: 'worker-restart-failed'; worker: number; error: string };

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
   * crash/restart machinery do not apply to 'main'.
   */
  thread?: 'worker' | 'main';
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
}

export class ModelHost {
  private readonly opts: Required<Omit<ModelHostOptions, 'onEvent' | 'sessionOptions'>> & Pick<ModelHostOptions, 'onEvent'> & { sessionOptions: WorkerSessionOptions };
  /** The workers' first start (in `start()`, or in the first `load()` with `spawnOnLoad`). */
  private spawning: Promise<void> | undefined;
  /** Every worker has started once: from then on a crash means restart. */
  private spawned = false;
  private state: 'idle' | 'starting' | 'running' | 'stopping' | 'stopped' = 'idle';
  private slots: Array<WorkerSlot | InlineSlot> = [];
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
    const settle = (p: Pending) => this.runDone(p);
    this.slots = this.opts.thread === 'main' ? [new InlineSlot(0, { maxBatch: this.opts.maxBatch, coalesce: this.opts.coalesce, onRunSettled: settle })] : Array.from(
      { length: Math.max(1, this.opts.poolSize) },
      (_, index) =>
        new WorkerSlot(index, {
          maxInFlight: this.opts.maxInFlightPerWorker,
          maxBatch: this.opts.maxBatch,
          coalesce: this.opts.coalesce,
          onRunSettled: settle,
          onCrash: (slot, code, failed) => this.onCrash(slot, code, failed),
        }),
    );
    this.spawning = undefined;
    this.spawned = false;
    if (this.opts.spawnOnLoad) {
      this.state = 'running';
      return;
    }
    try {
      await this.spawnWorkers();
    } catch (err) {
      await Promise.all(this.slots.map((s) => s.close(err as Error)));
      this.state = 'stopped';
      throw err;
    }
    this.state = 'running';
  }

  /** Starts every worker once; a failed first start is retried by the next call. */
  private spawnWorkers(): Promise<void> {
    this.spawning ??= Promise.all(this.slots.filter((s) => s.state !== 'ready').map(async (s) => s.markReady(await s.spawn()))).then(
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
    // Each worker finishes the run it is in, releases its sessions and exits (WorkerSlot.close).
    await Promise.all(this.slots.map((s) => s.close(stopped)));
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
    if (this.opts.spawnOnLoad) {
      try {
        await this.spawnWorkers();
      } catch (err) {
        throw new RuntimeError('MODEL_LOAD_FAILED', `cannot start the inference worker: ${(err as Error).message}`);
      }
    }
    const id = ++this.nextHandle;
    const path = resolvePath(modelPath);
    const options = { ...this.opts.sessionOptions, ...sessionOptions };
    const results = await Promise.allSettled(this.slots.map((s) => s.request({ op: 'load', id: 0, handle: id, modelPath: path, sessionOptions: options })));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      results.forEach((r, i) => r.status === 'fulfilled' && this.slots[i].request({ op: 'release', id: 0, handle: id }).catch(() => {}));
      throw failed.reason instanceof RuntimeError ? failed.reason : new RuntimeError('MODEL_LOAD_FAILED', String(failed.reason));
    }
    const info = (results[0] as PromiseFulfilledResult<ModelInfo>).value;
    const handle: ModelHandle = Object.freeze({ id, modelPath: path, ...info, sessionOptions: Object.freeze(options) });
    this.handles.set(id, { handle, inflight: 0, holds: 0, drainWaiters: [] });
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
      await new Promise<void>((res) => {
        st.drainWaiters.push(res);
        this.maybeDrained(st);
      });
      this.handles.delete(handle.id);
      await Promise.all(this.slots.map((s) => (s.state === 'stopped' ? undefined : s.request({ op: 'release', id: 0, handle: handle.id }).catch(() => {}))));
      for (const s of this.slots) s.broken.delete(handle.id);
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
      const slot = this.pickSlot(id);
      st.inflight++;
      this.runsOutstanding++;
      return new Promise((resolve, reject) => slot.enqueue(id, wire, transfer, { resolve: resolve as Pending['resolve'], reject, run: id }, options.mergeable === true));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Counters for telemetry and tests. */
  stats(): { state: string; activeHandle?: number; handles: number; workers: Array<ReturnType<WorkerSlot['info']>> } {
    return { state: this.state, activeHandle: this.activeId, handles: this.handles.size, workers: this.slots.map((s) => s.info()) };
  }

  /**
   * Test hook: worker `index` dies at once with an uncaught exception (the host must recover).
   * Runs already executing in onnxruntime finish first: JS cannot interrupt a native call.
   */
  simulateCrash(index = 0): void {
    this.slots[index]?.crash();
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
    if (this.state !== 'running' && this.state !== 'stopping') return;
    let generation: number;
    try {
      generation = await slot.spawn();
    } catch (err) {
      this.opts.onEvent?.({ type: 'worker-restart-failed', worker: slot.index, error: (err as Error).message });
      return; // the slot reported the exit: onCrash has scheduled the next attempt
    }
    // Runs stay queued (the slot is 'starting') until the models are back. Active model first: it
    // is what the queued requests most likely wait for.
    const ids = [...this.handles.keys()].sort((a, b) => Number(b === this.activeId) - Number(a === this.activeId));
    const failedReloads: Array<{ handle: number; error: string }> = [];
    for (const id of ids) {
      const st = this.handles.get(id);
      if (!st) continue;
      try {
        await slot.post({ op: 'load', id: 0, handle: id, modelPath: st.handle.modelPath, sessionOptions: st.handle.sessionOptions });
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

  private pickSlot(handle: number): WorkerSlot | InlineSlot {
    let best: WorkerSlot | InlineSlot | undefined;
    for (const s of this.slots) {
      if (s.state === 'stopped' || s.broken.has(handle)) continue;
      if (!best || s.load < best.load) best = s;
    }
    if (best) return best;
    const why = this.slots.map((s) => s.broken.get(handle)).find(Boolean);
    throw new RuntimeError('MODEL_LOAD_FAILED', `model handle ${handle} could not be reloaded after a worker restart${why ? `: ${why}` : ''}`);
  }

  private runDone(p: Pending): void {
    if (p.run === undefined) return;
    const st = this.handles.get(p.run);
    if (st) {
      st.inflight--;
      this.maybeDrained(st);
    }
    if (--this.runsOutstanding === 0 && this.idleWaiters.length > 0) for (const w of this.idleWaiters.splice(0)) w();
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
