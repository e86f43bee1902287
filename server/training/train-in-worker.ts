/**
 * Runs a built-in training job in a worker thread. Training is seconds of pure CPU (≈ 6 s for the
 * CNN); on the control plane's thread it would stall HTTP, MQTT keep-alives and timers for that long.
 * One worker per job, ended when the job ends; aborting terminates it at once.
 *
 * @example
 * const r = await trainInWorker({ kind: 'cnn', data, options: { seed: 1 }, initOnnx: parentBytes },
 *   { onEpoch: (h) => log.info(h, 'epoch'), signal: AbortSignal.timeout(120_000) });
 */
import { Worker } from 'node:worker_threads';
import type { TrainHistory } from './minibatch.ts';
import type { TrainJob, TrainJobResult } from './train-job.ts';
import type { FromTrainWorker } from './train-worker.ts';

// From source (tsx) the worker starts through the bootstrap, which registers tsx in the thread; the
// compiled server (scripts/build.mjs) runs its bundled entry, next to this code, with no loader.
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const ENTRY = new URL(FROM_SOURCE ? './train-worker.ts' : './train-worker.js', import.meta.url);
const SCRIPT = FROM_SOURCE ? new URL('./worker-bootstrap.mjs', import.meta.url) : ENTRY;

export interface TrainInWorkerOptions {
  onEpoch?: (h: TrainHistory) => void;
  /** Aborting terminates the worker and rejects with the signal's reason. */
  signal?: AbortSignal;
}

export function trainInWorker(job: TrainJob, opts: TrainInWorkerOptions = {}): Promise<TrainJobResult> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(opts.signal.reason);
    const worker = new Worker(SCRIPT, { workerData: { entry: ENTRY.href, job }, name: `flotilla-train-${job.kind}` });
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      fn();
      void worker.terminate();
    };
    const onAbort = () => finish(() => reject(opts.signal!.reason));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (msg: FromTrainWorker) => {
      if (msg.type === 'epoch') opts.onEpoch?.({ epoch: msg.epoch, loss: msg.loss, accuracy: msg.accuracy });
      else if (msg.type === 'done') finish(() => resolve(msg.result));
      else finish(() => reject(new Error(`training failed: ${msg.message}`)));
    });
    worker.on('error', (err) => finish(() => reject(err)));
    worker.on('exit', (code) => finish(() => reject(new Error(`training worker exited with code ${code} before finishing`))));
  });
}
