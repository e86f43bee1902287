/**
 * Messages between `ModelHost` (main thread) and `inference-worker.ts`. Requests carry an id the
 * answer repeats; runs travel in batches (one postMessage for every request issued in the same
 * tick) because a message hop, not the model, is the expensive part for small models.
 */
import { DEVICE_SESSION_OPTIONS } from '../../firmware-bundles/session-options.ts';
import type { RuntimeErrorJson } from './errors.ts';
import type { HostTensor, TensorMeta } from './tensor.ts';

/** Session options the host forwards to onnxruntime (a subset worth configuring on devices; a bundle's `session`). */
export interface WorkerSessionOptions {
  intraOpNumThreads?: number;
  interOpNumThreads?: number;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  executionMode?: 'sequential' | 'parallel';
  enableCpuMemArena?: boolean;
  enableMemPattern?: boolean;
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
}

/**
 * Options every session starts from (the host's `sessionOptions` go on top): the device options the
 * bundle builder records smoke outputs with (firmware-bundles/session-options.ts explains why they
 * must match, and why `session.disable_quant_qdq` is set). Threads come from the host's options.
 */
export const SESSION_DEFAULTS = {
  graphOptimizationLevel: DEVICE_SESSION_OPTIONS.graphOptimizationLevel,
  extra: DEVICE_SESSION_OPTIONS.extra,
} as const;

/** What a loaded model looks like. */
export interface ModelInfo {
  inputNames: string[];
  outputNames: string[];
  inputs: TensorMeta[];
  outputs: TensorMeta[];
}

export interface RunRequest {
  id: number;
  handle: number;
  feeds: Record<string, HostTensor>;
  /** Dim 0 is a batch of independent rows: the worker may merge this run with others (merge-runs.ts). */
  mergeable?: true;
}

export type ToWorker =
  /**
   * `modelBytes`: the file's contents, read again through the host's open file (model-file.ts: the path
   * may be gone since the first load); `modelPath` then only names it in errors, and external data
   * files are read from `externalDataFolder`.
   */
  | { op: 'load'; id: number; handle: number; modelPath: string; sessionOptions?: WorkerSessionOptions; modelBytes?: Uint8Array; externalDataFolder?: string }
  | { op: 'run'; runs: RunRequest[] }
  | { op: 'release'; id: number; handle: number }
  /** Finish what was started, release every session, exit. */
  | { op: 'close' }
  /** Test hook: die now with an uncaught exception, as a crashing worker would. */
  | { op: 'crash' };

/**
 * `merged`: the run shared one session.run with others (dynamic batching; counted in the host's stats).
 * `runUs`: what one session.run of its batch took on the thread that ran it (session-table.ts).
 */
export type RunResult = { id: number; ok: true; outputs: Record<string, HostTensor>; merged?: true; runUs?: number } | { id: number; ok: false; error: RuntimeErrorJson };

export type FromWorker =
  | { op: 'ready' }
  | { op: 'loaded'; id: number; info: ModelInfo }
  | { op: 'released'; id: number }
  | { op: 'failed'; id: number; error: RuntimeErrorJson }
  | { op: 'results'; results: RunResult[] };
