// What every trainer gets and returns. A trainer either leaves a model at `outputPath` (built-in and
// command trainers) or hands the job to an external pipeline that uploads the model later (webhook).
import type { LogStream } from '../job-log.ts';

export interface TrainerContext {
  jobId: string;
  modelName: string;
  attempt: number;
  /** The job's scratch folder (removed when the job ends). */
  workDir: string;
  /** The training snapshot: a CSV / JSONL file, or a folder of images with labels.csv. */
  datasetPath: string;
  datasetKind: 'tabular' | 'images' | 'tensors';
  /** The parent version's ONNX (a copy), when the job has a parent. */
  parentModelPath: string | null;
  /** Where the trained ONNX must be written. */
  outputPath: string;
  /** Aborted on timeout or cancellation: the trainer must stop its work at once. */
  signal: AbortSignal;
  log(stream: LogStream, line: string): void;
}

export type TrainerResult =
  | { kind: 'model'; metrics: Record<string, number>; params: Record<string, unknown> }
  /** The job waits for an upload authenticated with the token whose sha256 is given. */
  | { kind: 'waiting'; uploadTokenHash: string };
