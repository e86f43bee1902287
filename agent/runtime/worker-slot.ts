/**
 * One inference worker thread as `ModelHost` sees it: starting it, the requests on it (sent and
 * not yet answered), the runs waiting to be sent, batching them into messages, and ending it.
 * What to do when it crashes (restart, reload models) is the host's decision: the slot reports it.
 */
import { Worker } from 'node:worker_threads';
import { RuntimeError } from './errors.ts';
import type { HostTensor } from './tensor.ts';
import type { FromWorker, RunRequest, ToWorker } from './worker-protocol.ts';

export interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  /** Handle id for runs (drain accounting); absent for load/release. */
  run?: number;
}

export interface WorkerSlotOptions {
  maxInFlight: number;
  maxBatch: number;
  coalesce: boolean;
  /** A run left the slot, answered or failed; `runUs` (answered runs) is what its session.run took. */
  onRunSettled(p: Pending, runUs?: number): void;
  /** The worker ended without being asked to; the requests that were on it have been failed. */
  onCrash(slot: WorkerSlot, exitCode: number, failedRequests: number): void;
}

type Control = Extract<ToWorker, { op: 'load' | 'release' }>;

// From source (tsx) the worker starts through the bootstrap, which registers tsx in the thread; the
// compiled agent (scripts/build.mjs) runs its bundled entry, next to this code, with no loader.
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const ENTRY = new URL(FROM_SOURCE ? './inference-worker.ts' : './inference-worker.js', import.meta.url);
const SCRIPT = FROM_SOURCE ? new URL('./worker-bootstrap.mjs', import.meta.url) : ENTRY;
/** How long a closing worker may take to finish its current runs before it is terminated. */
const CLOSE_TIMEOUT_MS = 10_000;

export class WorkerSlot {
  state: 'starting' | 'ready' | 'stopped' = 'starting';
  /** Handles that failed to reload after a restart, with the reason. */
  readonly broken = new Map<number, string>();
  crashes = 0;
  lastCrashAt = 0;
  restartTimer?: NodeJS.Timeout;
  lastError?: string;
  /** Runs answered from a merged session.run (dynamic batching, merge-runs.ts). */
  mergedRuns = 0;

  private worker?: Worker;
  private generation = 0;
  private nextId = 0;
  /** Sent to the worker, not yet answered. */
  private readonly pending = new Map<number, Pending>();
  private runsPosted = 0;
  /** Accepted, not yet sent. */
  private queue: Array<{ req: RunRequest; transfer: ArrayBuffer[]; pending: Pending }> = [];
  private flushScheduled = false;
  /** Waiting for the slot to take requests (survives restarts; rejected only by close). */
  private readyWaiters: Array<{ resolve(): void; reject(err: Error): void }> = [];
  /** Waiting for the current worker's 'ready' message. */
  private spawnWaiter?: { resolve(): void; reject(err: Error): void };

  constructor(
    readonly index: number,
    private readonly opts: WorkerSlotOptions,
  ) {}

  /** Runs on or waiting for this slot; a slot that is not ready ranks last. */
  get load(): number {
    return this.runsPosted + this.queue.length + (this.state === 'ready' ? 0 : 1e6);
  }

  info(): { state: string; inFlight: number; queued: number; crashes: number; mergedRuns: number; threadId?: number } {
    return { state: this.state, inFlight: this.runsPosted, queued: this.queue.length, crashes: this.crashes, mergedRuns: this.mergedRuns, threadId: this.worker?.threadId };
  }

  /** Starts a worker; resolves with its generation once it said 'ready'. The slot stays 'starting'. */
  spawn(): Promise<number> {
    const generation = ++this.generation;
    this.state = 'starting';
    this.lastError = undefined;
    // A small young generation, as for the main thread (bin/flotilla-agent.js): a worker's garbage is
    // the tensors of a few requests, and the default 16 MB semi-spaces only grow its RSS.
    const worker = new Worker(SCRIPT, { workerData: { entry: ENTRY.href }, name: `flotilla-inference-${this.index}`, resourceLimits: { maxYoungGenerationSizeMb: 6 } });
    this.worker = worker;
    worker.on('message', (msg: FromWorker) => this.generation === generation && this.onMessage(msg));
    worker.on('error', (err) => {
      if (this.generation === generation) this.lastError = err.message;
    });
    worker.on('exit', (code) => this.generation === generation && this.onExit(code));
    return new Promise<number>((resolve, reject) => {
      this.spawnWaiter = { resolve: () => resolve(generation), reject };
    });
  }

  /** Whether `generation` is still the running worker (it has not crashed or been closed since). */
  isCurrent(generation: number): boolean {
    return this.generation === generation && this.worker !== undefined;
  }

  /** The slot takes requests: wake what waited for it and send what is queued. */
  markReady(generation: number): void {
    if (!this.isCurrent(generation)) return;
    this.state = 'ready';
    for (const w of this.readyWaiters.splice(0)) w.resolve();
    this.flush();
  }

  /** A load/release once the slot is ready (after a restart if one is under way). */
  async request(msg: Control): Promise<unknown> {
    if (this.state !== 'ready') await new Promise<void>((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
    return this.post(msg);
  }

  /** A load/release now, whatever the state (used to reload models before the slot is ready). */
  post(msg: Control): Promise<unknown> {
    const worker = this.worker;
    if (!worker) return Promise.reject(new RuntimeError('WORKER_CRASHED', `inference worker ${this.index} is not running`));
    const id = ++this.nextId;
    // A model's bytes (a reload) are read for this message alone: moved, not copied.
    const transfer = msg.op === 'load' && msg.modelBytes ? [msg.modelBytes.buffer as ArrayBuffer] : [];
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ ...msg, id } satisfies ToWorker, transfer);
    });
  }

  /** Accepts a run; it is sent with the others of this tick (or at once without coalescing). */
  enqueue(handle: number, feeds: Record<string, HostTensor>, transfer: ArrayBuffer[], pending: Pending, mergeable = false): void {
    this.queue.push({ req: mergeable ? { id: ++this.nextId, handle, feeds, mergeable: true } : { id: ++this.nextId, handle, feeds }, transfer, pending });
    if (!this.opts.coalesce) return this.flush();
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Test hook: the worker dies at once with an uncaught exception. */
  crash(): void {
    this.worker?.postMessage({ op: 'crash' } satisfies ToWorker);
  }

  /**
   * Ends the worker for good; whatever is still on it or queued fails with `err`. The worker is
   * asked to close rather than terminate()d: terminating a thread inside session.run() aborts the
   * whole process (seen with onnxruntime-node 1.30). terminate() is the last resort for a wedged one.
   */
  async close(err: Error): Promise<void> {
    this.state = 'stopped';
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const worker = this.worker;
    this.worker = undefined;
    this.generation++; // ignore whatever the old worker still says
    this.failPending(err);
    this.failQueued(err);
    for (const w of this.readyWaiters.splice(0)) w.reject(err);
    this.spawnWaiter?.reject(err);
    this.spawnWaiter = undefined;
    if (!worker) return;
    const exited = new Promise<void>((res) => worker.once('exit', () => res()));
    worker.postMessage({ op: 'close' } satisfies ToWorker);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([exited.then(() => false), new Promise<boolean>((res) => (timer = setTimeout(() => res(true), CLOSE_TIMEOUT_MS)))]);
    clearTimeout(timer);
    if (timedOut) await worker.terminate();
  }

  /** Fails the runs not sent yet (e.g. on stop). */
  failQueued(err: Error): void {
    for (const q of this.queue.splice(0)) {
      this.opts.onRunSettled(q.pending);
      q.pending.reject(err);
    }
  }

  private onMessage(msg: FromWorker): void {
    switch (msg.op) {
      case 'ready':
        this.spawnWaiter?.resolve();
        this.spawnWaiter = undefined;
        return;
      case 'loaded':
      case 'released':
      case 'failed': {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.op === 'failed') p?.reject(RuntimeError.fromJSON(msg.error));
        else p?.resolve(msg.op === 'loaded' ? msg.info : undefined);
        return;
      }
      case 'results':
        for (const r of msg.results) {
          const p = this.pending.get(r.id);
          if (!p) continue;
          this.pending.delete(r.id);
          this.runsPosted--;
          this.opts.onRunSettled(p, r.ok ? r.runUs : undefined);
          if (r.ok && r.merged) this.mergedRuns++;
          if (r.ok) p.resolve(r.outputs);
          else p.reject(RuntimeError.fromJSON(r.error));
        }
        this.flush();
        return;
    }
  }

  private onExit(code: number): void {
    this.worker = undefined;
    const failed = this.pending.size;
    const reason = `inference worker ${this.index} exited unexpectedly (code ${code}${this.lastError ? `: ${this.lastError}` : ''})`;
    this.failPending(new RuntimeError('WORKER_CRASHED', `${reason}; the request was on it and is lost; the worker is being restarted`, { worker: this.index, exitCode: code }));
    this.state = 'starting';
    this.spawnWaiter?.reject(new RuntimeError('WORKER_CRASHED', `${reason} before it was ready`));
    this.spawnWaiter = undefined;
    this.opts.onCrash(this, code, failed);
  }

  private flush(): void {
    const worker = this.worker;
    if (this.state !== 'ready' || !worker) return;
    const batch = this.opts.coalesce ? this.opts.maxBatch : 1;
    while (this.queue.length > 0 && this.runsPosted < this.opts.maxInFlight) {
      const items = this.queue.splice(0, Math.min(batch, this.opts.maxInFlight - this.runsPosted));
      const runs: RunRequest[] = [];
      const transfer: ArrayBuffer[] = [];
      for (const q of items) {
        const broken = this.broken.get(q.req.handle);
        if (broken !== undefined) {
          this.opts.onRunSettled(q.pending);
          q.pending.reject(new RuntimeError('MODEL_LOAD_FAILED', `model handle ${q.req.handle} could not be reloaded after a worker restart: ${broken}`));
          continue;
        }
        this.pending.set(q.req.id, q.pending);
        runs.push(q.req);
        transfer.push(...q.transfer);
      }
      this.runsPosted += runs.length;
      if (runs.length > 0) worker.postMessage({ op: 'run', runs } satisfies ToWorker, transfer);
    }
  }

  private failPending(err: Error): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    this.runsPosted = 0;
    for (const p of pending) {
      if (p.run !== undefined) this.opts.onRunSettled(p);
      p.reject(err);
    }
  }
}
