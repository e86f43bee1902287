/**
 * Runs an analysis task (optimize + evaluate, or evaluate) in a worker thread, one at a time per
 * process: onnxruntime's `session.run` blocks the thread it runs on, and latency numbers measured
 * while another analysis competes for the same cores would mean little. Later callers queue.
 *
 * @example
 * const { report, variant } = await analyzeInWorker({ kind: 'optimize', model, options, dataset, budgets });
 */
import { Worker } from 'node:worker_threads';
import { ServiceError, type ErrorCode } from '../errors.ts';
import type { AnalysisResult, AnalysisTask } from './analysis.ts';
import type { FromAnalysisWorker } from './analysis-worker.ts';
import { OptimizeError, type OptimizeRefusal } from './errors.ts';

// From source (tsx) the worker starts through the training worker's bootstrap (generic: it registers
// tsx, then imports the entry); the compiled server runs its bundled entry, next to this code.
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const ENTRY = new URL(FROM_SOURCE ? './analysis-worker.ts' : './analysis-worker.js', import.meta.url);
const SCRIPT = FROM_SOURCE ? new URL('../training/worker-bootstrap.mjs', import.meta.url) : ENTRY;
/** An analysis of a model small enough to optimize on the control plane takes seconds; this bounds a stuck one. */
export const ANALYSIS_TIMEOUT_MS = 5 * 60_000;

let queue: Promise<unknown> = Promise.resolve();

export function analyzeInWorker(task: AnalysisTask, timeoutMs = ANALYSIS_TIMEOUT_MS): Promise<AnalysisResult> {
  const run = queue.then(() => runOne(task, timeoutMs));
  queue = run.catch(() => undefined);
  return run;
}

function runOne(task: AnalysisTask, timeoutMs: number): Promise<AnalysisResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(SCRIPT, { workerData: { entry: ENTRY.href, task }, name: `flotilla-${task.kind}` });
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
      void worker.terminate();
    };
    const timer = setTimeout(() => finish(() => reject(new Error(`${task.kind} did not finish within ${timeoutMs / 1000} s`))), timeoutMs);
    worker.on('message', (msg: FromAnalysisWorker) => {
      if (msg.type === 'done') return finish(() => resolve(msg.result));
      finish(() => {
        if (msg.reason) reject(new OptimizeError(msg.reason as OptimizeRefusal, msg.message, stripReason(msg.details)));
        else if (msg.code) reject(new ServiceError(msg.code as ErrorCode, msg.message, msg.details));
        // Anything else the evaluation throws is about the data meeting the model (shapes, labels).
        else reject(new ServiceError('invalid_request', `evaluation failed: ${msg.message.split('\n')[0].slice(0, 300)}`));
      });
    });
    worker.on('error', (err) => finish(() => reject(err)));
    worker.on('exit', (code) => finish(() => reject(new Error(`analysis worker exited with code ${code} before finishing`))));
  });
}

/** OptimizeError adds `reason` to its details itself. */
function stripReason(details: unknown): unknown {
  if (!details || typeof details !== 'object') return undefined;
  const { reason: _reason, ...rest } = details as Record<string, unknown>;
  return Object.keys(rest).length ? rest : undefined;
}
