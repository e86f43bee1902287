// Worker-thread side of `analyzeInWorker`: runs one analysis task from workerData and posts `done`
// (variant bytes transferred, not copied) or `error` (with an optimizer refusal's reason and details).
import { parentPort, workerData } from 'node:worker_threads';
import { ServiceError } from '../errors.ts';
import { runAnalysis, type AnalysisResult, type AnalysisTask } from './analysis.ts';
import { OptimizeError } from './errors.ts';

export type FromAnalysisWorker =
  | { type: 'done'; result: AnalysisResult }
  | { type: 'error'; message: string; reason?: string; code?: string; details?: unknown };

const port = parentPort;
if (!port) throw new Error('analysis-worker.ts must run in a worker thread');
try {
  const result = await runAnalysis((workerData as { task: AnalysisTask }).task);
  port.postMessage({ type: 'done', result } satisfies FromAnalysisWorker, result.variant ? [result.variant.buffer as ArrayBuffer] : []);
} catch (err) {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof OptimizeError) port.postMessage({ type: 'error', message, reason: err.reason, details: err.details } satisfies FromAnalysisWorker);
  else if (err instanceof ServiceError) port.postMessage({ type: 'error', message, code: err.code, details: err.details } satisfies FromAnalysisWorker);
  else port.postMessage({ type: 'error', message } satisfies FromAnalysisWorker);
}
