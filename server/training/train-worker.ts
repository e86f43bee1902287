// Worker-thread side of `trainInWorker`: runs the job from workerData, posts one `epoch` message per
// epoch and then `done` (ONNX bytes transferred, not copied) or `error`.
import { parentPort, workerData } from 'node:worker_threads';
import { runTrainJob, type TrainJob } from './train-job.ts';

export type FromTrainWorker =
  | { type: 'epoch'; epoch: number; loss: number; accuracy: number }
  | { type: 'done'; result: Awaited<ReturnType<typeof runTrainJob>> }
  | { type: 'error'; message: string };

const port = parentPort;
if (!port) throw new Error('train-worker.ts must run in a worker thread');
const job = (workerData as { job: TrainJob }).job;
try {
  const result = await runTrainJob(job, (h) => port.postMessage({ type: 'epoch', ...h } satisfies FromTrainWorker));
  port.postMessage({ type: 'done', result } satisfies FromTrainWorker, [result.onnx.buffer as ArrayBuffer]);
} catch (err) {
  port.postMessage({ type: 'error', message: err instanceof Error ? err.message : String(err) } satisfies FromTrainWorker);
}
