// ModelRunner: runs a model version on one input for the console's playground, in one long-lived
// worker thread (started on first use) that keeps recently used sessions open, so a run costs
// session.run plus a message round trip instead of a worker start and a session load.
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { Invalid } from '../errors.ts';

export const TENSOR_TYPES = ['float32', 'float64', 'int32', 'int64', 'int8', 'uint8', 'bool'] as const;
export type TensorType = (typeof TENSOR_TYPES)[number];

export interface TensorJson {
  dims: number[];
  type: string;
  data: number[];
}

export interface RunRequest {
  id: number;
  sha256: string;
  file: string;
  inputs: Record<string, TensorJson>;
}

export type RunReply = { id: number; ok: true; outputs: Record<string, TensorJson>; latencyMs: number } | { id: number; ok: false; message: string };

const EXT = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const BOOTSTRAP = new URL('../training/worker-bootstrap.mjs', import.meta.url);
const ENTRY = new URL(`./run-worker${EXT}`, import.meta.url).href;

export class ModelRunner {
  private worker?: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: RunReply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();

  constructor(private readonly opts: { logger: Logger; timeoutMs?: number }) {}

  async run(req: Omit<RunRequest, 'id'>): Promise<{ outputs: Record<string, TensorJson>; latencyMs: number }> {
    const worker = this.ensureWorker();
    const id = this.nextId++;
    const reply = await new Promise<RunReply>((resolve, reject) => {
      const timeoutMs = this.opts.timeoutMs ?? 30_000;
      // A run that hangs takes the worker (and its sessions) with it; the next run starts a fresh one.
      const timer = setTimeout(() => this.fail(new Error(`the model did not answer within ${timeoutMs / 1000} s`)), timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      worker.postMessage({ ...req, id } satisfies RunRequest);
    });
    // onnxruntime's own message names the input, the shape or the type it refused.
    if (!reply.ok) throw Invalid(`the model refused the input: ${reply.message.split('\n')[0].slice(0, 500)}`);
    return { outputs: reply.outputs, latencyMs: reply.latencyMs };
  }

  async stop(): Promise<void> {
    this.fail(new Error('control plane stopping'));
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(BOOTSTRAP, { workerData: { entry: ENTRY }, name: 'flotilla-model-runner' });
    worker.on('message', (reply: RunReply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      clearTimeout(p.timer);
      this.pending.delete(reply.id);
      p.resolve(reply);
    });
    worker.on('error', (err) => {
      this.opts.logger.error({ err }, 'model runner worker failed');
      this.fail(err);
    });
    worker.on('exit', () => {
      if (this.worker === worker) this.fail(new Error('model runner worker exited'));
    });
    worker.unref();
    this.worker = worker;
    return worker;
  }

  /** Rejects every pending run and drops the worker. */
  private fail(err: Error): void {
    const worker = this.worker;
    this.worker = undefined;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(err);
    }
    if (worker) void worker.terminate();
  }
}
