/**
 * The onnxruntime sessions of one thread, keyed by the handle id the host assigned, and how runs
 * execute on them (checks, dynamic batching through merge-runs.ts, float16 widening). The inference
 * worker (inference-worker.ts) drives one over its message port; `InlineSlot` drives one on the main
 * thread, for models small enough that a thread hand-off costs more than the run (agent/README.md).
 */
import type * as Ort from 'onnxruntime-node';
import { asRuntimeError, RuntimeError } from './errors.ts';
import { concatRuns, MAX_MERGED_ROWS, mergeKey, splitRows } from './merge-runs.ts';
import { checkFeeds, prepareTransfer, widenFloat16, type HostTensor, type TensorMeta } from './tensor.ts';
import { SESSION_DEFAULTS, type ModelInfo, type RunRequest, type RunResult, type WorkerSessionOptions } from './worker-protocol.ts';

// onnxruntime-node is loaded with the first model, not with this module: the main thread imports this
// file for `--inference-thread main`, and an agent in the default worker mode, or without a model,
// would otherwise carry the add-on and its JavaScript (≈ 13 MB RSS) for nothing (agent/README.md,
// "Memory"). Every run follows a load, so `ort` is set wherever a session exists.
let ort: typeof Ort | undefined;

interface Loaded {
  session: Ort.InferenceSession;
  info: ModelInfo;
}

function metaOf(list: readonly Ort.InferenceSession.ValueMetadata[]): TensorMeta[] {
  return list.map((m) => (m.isTensor ? { name: m.name, isTensor: true, type: m.type, shape: [...m.shape] } : { name: m.name, isTensor: false }));
}

/**
 * When the last session.run of this thread returned. The runs of a batch are started together and
 * execute one after the other (each defers to setImmediate, and its continuation runs before the next
 * one starts), so a run's own time starts when it was called or when the one before it returned,
 * whichever is later; timed from its call alone it would count the runs queued before it.
 */
let lastRunEnd = 0;

/** Runs the session; `runUs` is what the run itself took (for ModelHost's choice of thread, thread-choice.ts). */
async function runSession(session: Ort.InferenceSession, given: Record<string, HostTensor>): Promise<{ outputs: Record<string, HostTensor>; runUs: number }> {
  const feeds: Record<string, Ort.Tensor> = {};
  for (const name in given) {
    const t = given[name];
    feeds[name] = new ort!.Tensor(t.type as Ort.Tensor.Type, t.data as Ort.Tensor.DataType, t.dims);
  }
  let out: Ort.InferenceSession.ReturnType;
  const called = performance.now();
  let runUs = 0;
  try {
    out = await session.run(feeds);
  } catch (err) {
    throw new RuntimeError('INFERENCE_FAILED', `inference failed: ${(err as Error).message ?? err}`);
  } finally {
    const ended = performance.now();
    runUs = (ended - Math.max(called, lastRunEnd)) * 1000;
    lastRunEnd = ended;
  }
  const outputs: Record<string, HostTensor> = {};
  for (const name in out) {
    const value = out[name];
    if (value instanceof ort!.Tensor) outputs[name] = widenFloat16({ type: value.type, dims: [...value.dims], data: value.data as HostTensor['data'] });
  }
  return { outputs, runUs };
}

export class SessionTable {
  private readonly sessions = new Map<number, Loaded>();
  // Work under way, so `close` can wait for it: ending a thread while onnxruntime is inside
  // session.run() aborts the whole process (a Napi::Error thrown from native code, seen with
  // worker.terminate()), and a released session must not be running.
  private readonly busy = new Set<Promise<unknown>>();

  /** From a file or its bytes (whose external data files, if any, are in `externalDataFolder`). Throws MODEL_LOAD_FAILED. */
  load(handle: number, modelPath: string | Uint8Array, sessionOptions?: WorkerSessionOptions, externalDataFolder?: string): Promise<ModelInfo> {
    return this.track(this.doLoad(handle, modelPath, sessionOptions, externalDataFolder));
  }

  /** Never throws: a failed release leaves nothing to retry; the handle is gone either way. */
  release(handle: number): Promise<void> {
    const loaded = this.sessions.get(handle);
    this.sessions.delete(handle);
    return this.track((async () => {
      try {
        await loaded?.session.release();
      } catch {
        // see above
      }
    })());
  }

  /**
   * Runs a batch; each run gets its own result. Output buffers that can be transferred are pushed
   * on `transfer`. Started together: each session.run() defers to setImmediate, so the whole batch
   * executes in one turn of the loop.
   */
  async run(runs: RunRequest[], transfer: ArrayBuffer[]): Promise<RunResult[]> {
    if (runs.length === 1) return [await this.track(this.runOne(runs[0], transfer))]; // nothing to merge with
    const results = await this.track(Promise.all(this.groupRuns(runs).map((g) => (g.length === 1 ? this.runOne(g[0], transfer).then((r) => [r]) : this.runMerged(g, transfer)))));
    return results.flat();
  }

  /** Waits for the work under way, then releases every session. */
  async close(): Promise<void> {
    while (this.busy.size > 0) await Promise.allSettled([...this.busy]);
    for (const { session } of this.sessions.values()) await session.release().catch(() => {});
    this.sessions.clear();
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.busy.add(p);
    void p.finally(() => this.busy.delete(p)).catch(() => {});
    return p;
  }

  private async doLoad(handle: number, model: string | Uint8Array, sessionOptions?: WorkerSessionOptions, externalDataFolder?: string): Promise<ModelInfo> {
    if (this.sessions.has(handle)) throw new RuntimeError('MODEL_LOAD_FAILED', `handle ${handle} is already loaded`);
    let session: Ort.InferenceSession;
    try {
      const runtime = (ort ??= await import('onnxruntime-node'));
      const options: Ort.InferenceSession.SessionOptions = { ...SESSION_DEFAULTS, ...sessionOptions };
      // From bytes onnxruntime has no folder to resolve external data in (from a path it uses the path's).
      if (externalDataFolder !== undefined && typeof model !== 'string') options.extra = { ...SESSION_DEFAULTS.extra, session: { ...SESSION_DEFAULTS.extra.session, model_external_initializers_file_folder_path: externalDataFolder } };
      session = await (typeof model === 'string' ? runtime.InferenceSession.create(model, options) : runtime.InferenceSession.create(model, options));
    } catch (err) {
      const modelPath = typeof model === 'string' ? model : `(${model.byteLength} bytes)`;
      throw new RuntimeError('MODEL_LOAD_FAILED', `cannot load model ${modelPath}: ${(err as Error).message ?? err}`, { modelPath });
    }
    const info: ModelInfo = {
      inputNames: [...session.inputNames],
      outputNames: [...session.outputNames],
      inputs: metaOf(session.inputMetadata),
      outputs: metaOf(session.outputMetadata),
    };
    this.sessions.set(handle, { session, info });
    return info;
  }

  private async runOne(req: RunRequest, transfer: ArrayBuffer[]): Promise<RunResult> {
    try {
      const loaded = this.sessions.get(req.handle);
      if (!loaded) throw new RuntimeError('UNKNOWN_HANDLE', `model handle ${req.handle} is not loaded in the worker`);
      checkFeeds(loaded.info.inputs, req.feeds);
      const { outputs, runUs } = await runSession(loaded.session, req.feeds);
      prepareTransfer(outputs, transfer);
      return { id: req.id, ok: true, outputs, runUs };
    } catch (err) {
      return { id: req.id, ok: false, error: asRuntimeError(err, 'INFERENCE_FAILED').toJSON() };
    }
  }

  /**
   * Runs merged into one session.run (merge-runs.ts). Anything unusual — a run that fails its checks,
   * a failed merged run, outputs that do not split by rows — sends the runs concerned through runOne,
   * so each gets the answer or the error it would have had alone.
   */
  private async runMerged(group: RunRequest[], transfer: ArrayBuffer[]): Promise<RunResult[]> {
    const loaded = this.sessions.get(group[0].handle);
    const alone: RunRequest[] = [];
    const merged: RunRequest[] = [];
    for (const r of group) {
      try {
        if (!loaded) throw new Error('not loaded');
        checkFeeds(loaded.info.inputs, r.feeds);
        merged.push(r);
      } catch {
        alone.push(r);
      }
    }
    const results: Array<Promise<RunResult>> = alone.map((r) => this.runOne(r, transfer));
    let parts: Array<Record<string, HostTensor>> | undefined;
    let runUs = 0;
    if (loaded && merged.length > 1) {
      const { feeds, rows } = concatRuns(merged.map((r) => r.feeds));
      parts = await runSession(loaded.session, feeds).then((out) => ((runUs = out.runUs), splitRows(out.outputs, rows)), () => undefined);
    }
    if (parts) {
      const split = parts;
      merged.forEach((r, i) => {
        prepareTransfer(split[i], transfer);
        // One run answered them all: its time goes with the first only (the host times runs, not requests).
        results.push(Promise.resolve({ id: r.id, ok: true, outputs: split[i], merged: true, ...(i === 0 && { runUs }) }));
      });
    } else for (const r of merged) results.push(this.runOne(r, transfer));
    return Promise.all(results);
  }

  /** Mergeable runs of one model with the same input layout, up to MAX_MERGED_ROWS rows a group. */
  private groupRuns(runs: RunRequest[]): RunRequest[][] {
    const groups: RunRequest[][] = [];
    const open = new Map<string, { runs: RunRequest[]; rows: number }>();
    for (const r of runs) {
      const info = r.mergeable ? this.sessions.get(r.handle)?.info : undefined;
      const key = info && mergeKey(info, r.handle, r.feeds);
      const rows = key === undefined ? 0 : Object.values(r.feeds)[0].dims[0];
      if (key === undefined || rows > MAX_MERGED_ROWS) {
        groups.push([r]);
        continue;
      }
      let g = open.get(key);
      if (!g || g.rows + rows > MAX_MERGED_ROWS) {
        g = { runs: [], rows: 0 };
        open.set(key, g);
        groups.push(g.runs);
      }
      g.runs.push(r);
      g.rows += rows;
    }
    return groups;
  }
}
