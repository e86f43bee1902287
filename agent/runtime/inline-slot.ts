/**
 * The sessions on the agent's own thread, as `ModelHost` sees a slot (same surface as WorkerSlot).
 * For small models a run takes tens of µs while each thread hand-off (postMessage there and back)
 * costs ~100 µs here, so running inline removes most of a request's cost (agent/README.md, "Where
 * the model runs"). The price: a run blocks the agent's event loop (MQTT, HTTP) while it lasts, and a
 * native crash takes the agent down instead of one worker; that is why it is an option.
 */
import { RuntimeError } from './errors.ts';
import { SessionTable } from './session-table.ts';
import type { HostTensor } from './tensor.ts';
import type { RunRequest, ToWorker } from './worker-protocol.ts';
import type { Pending, WorkerSlotOptions } from './worker-slot.ts';

type Control = Extract<ToWorker, { op: 'load' | 'release' }>;

export class InlineSlot {
  state: 'starting' | 'ready' | 'stopped' = 'starting';
  /** Never filled: nothing restarts here. Kept so the host treats both slots alike. */
  readonly broken = new Map<number, string>();
  crashes = 0;
  lastCrashAt = 0;
  restartTimer?: NodeJS.Timeout;
  lastError?: string;
  mergedRuns = 0;

  private readonly table = new SessionTable();
  private nextId = 0;
  private running = 0;
  private queue: Array<{ req: RunRequest; pending: Pending }> = [];
  private flushScheduled = false;

  constructor(
    readonly index: number,
    private readonly opts: Pick<WorkerSlotOptions, 'maxBatch' | 'coalesce' | 'onRunSettled'>,
  ) {}

  get load(): number {
    return this.running + this.queue.length + (this.state === 'ready' ? 0 : 1e6);
  }

  info(): { state: string; inFlight: number; queued: number; crashes: number; mergedRuns: number; threadId?: number } {
    return { state: this.state, inFlight: this.running, queued: this.queue.length, crashes: 0, mergedRuns: this.mergedRuns, threadId: 0 };
  }

  spawn(): Promise<number> {
    return Promise.resolve(0);
  }

  isCurrent(_generation?: number): boolean {
    return this.state !== 'stopped';
  }

  markReady(_generation?: number): void {
    if (this.state !== 'stopped') this.state = 'ready';
  }

  request(msg: Control): Promise<unknown> {
    return this.post(msg);
  }

  post(msg: Control): Promise<unknown> {
    if (this.state === 'stopped') return Promise.reject(new RuntimeError('NOT_RUNNING', 'the model host stopped'));
    return msg.op === 'load' ? this.table.load(msg.handle, msg.modelBytes ?? msg.modelPath, msg.sessionOptions, msg.externalDataFolder) : this.table.release(msg.handle);
  }

  /** Accepts a run; it runs with the others of this tick (merged where it can be) or at once without coalescing. */
  enqueue(handle: number, feeds: Record<string, HostTensor>, _transfer: ArrayBuffer[], pending: Pending, mergeable = false): void {
    this.queue.push({ req: mergeable ? { id: ++this.nextId, handle, feeds, mergeable: true } : { id: ++this.nextId, handle, feeds }, pending });
    if (!this.opts.coalesce) return this.flush();
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Nothing to crash: a native crash here ends the process. */
  crash(): void {}

  async close(err: Error): Promise<void> {
    this.state = 'stopped';
    this.failQueued(err);
    await this.table.close();
  }

  failQueued(err: Error): void {
    for (const q of this.queue.splice(0)) {
      this.opts.onRunSettled(q.pending);
      q.pending.reject(err);
    }
  }

  private flush(): void {
    if (this.state !== 'ready') return;
    const batch = this.opts.coalesce ? this.opts.maxBatch : 1;
    while (this.queue.length > 0) {
      const items = this.queue.splice(0, batch);
      this.running += items.length;
      const byId = new Map(items.map((q) => [q.req.id, q.pending]));
      void this.table.run(items.map((q) => q.req), []).then((results) => {
        this.running -= items.length;
        for (const r of results) {
          const p = byId.get(r.id)!;
          this.opts.onRunSettled(p, r.ok ? r.runUs : undefined);
          if (r.ok && r.merged) this.mergedRuns++;
          if (r.ok) p.resolve(r.outputs);
          else p.reject(RuntimeError.fromJSON(r.error));
        }
      });
    }
  }
}
