/**
 * The inference worker (a worker_threads entry, started through `worker-bootstrap.mjs`). It owns
 * the onnxruntime sessions, keyed by the handle id the host assigned, because `session.run()` is a
 * synchronous native call that would otherwise block the agent's event loop (DESIGN.md).
 *
 * Protocol: see `worker-protocol.ts`. Inputs arrive as transferred typed arrays and are wrapped in
 * `ort.Tensor` without a copy; output buffers are transferred back.
 */
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { asRuntimeError, RuntimeError } from './errors.ts';
import { concatRuns, MAX_MERGED_ROWS, mergeKey, splitRows } from './merge-runs.ts';
import { checkFeeds, prepareTransfer, widenFloat16, type HostTensor, type TensorMeta } from './tensor.ts';
import { SESSION_DEFAULTS, type FromWorker, type ModelInfo, type RunRequest, type RunResult, type ToWorker } from './worker-protocol.ts';

if (!parentPort) throw new Error('inference-worker.ts must run in a worker thread');
const port = parentPort;

interface Loaded {
  session: ort.InferenceSession;
  info: ModelInfo;
}
const sessions = new Map<number, Loaded>();

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

function metaOf(list: readonly ort.InferenceSession.ValueMetadata[]): TensorMeta[] {
  return list.map((m) => (m.isTensor ? { name: m.name, isTensor: true, type: m.type, shape: [...m.shape] } : { name: m.name, isTensor: false }));
}

async function load(msg: Extract<ToWorker, { op: 'load' }>): Promise<void> {
  try {
    if (sessions.has(msg.handle)) throw new RuntimeError('MODEL_LOAD_FAILED', `handle ${msg.handle} is already loaded`);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(msg.modelPath, { ...SESSION_DEFAULTS, ...msg.sessionOptions });
    } catch (err) {
      throw new RuntimeError('MODEL_LOAD_FAILED', `cannot load model ${msg.modelPath}: ${(err as Error).message ?? err}`, { modelPath: msg.modelPath });
    }
    const info: ModelInfo = {
      inputNames: [...session.inputNames],
      outputNames: [...session.outputNames],
      inputs: metaOf(session.inputMetadata),
      outputs: metaOf(session.outputMetadata),
    };
    sessions.set(msg.handle, { session, info });
    post({ op: 'loaded', id: msg.id, info });
  } catch (err) {
    post({ op: 'failed', id: msg.id, error: asRuntimeError(err, 'MODEL_LOAD_FAILED').toJSON() });
  }
}

async function release(msg: Extract<ToWorker, { op: 'release' }>): Promise<void> {
  const loaded = sessions.get(msg.handle);
  sessions.delete(msg.handle);
  try {
    await loaded?.session.release();
  } catch {
    // A failed release leaves nothing we could retry; the handle is gone either way.
  }
  post({ op: 'released', id: msg.id });
}

async function runOne(req: RunRequest, transfer: ArrayBuffer[]): Promise<RunResult> {
  try {
    const loaded = sessions.get(req.handle);
    if (!loaded) throw new RuntimeError('UNKNOWN_HANDLE', `model handle ${req.handle} is not loaded in the worker`);
    checkFeeds(loaded.info.inputs, req.feeds);
    const outputs = await runSession(loaded.session, req.feeds);
    prepareTransfer(outputs, transfer);
    return { id: req.id, ok: true, outputs };
  } catch (err) {
    return { id: req.id, ok: false, error: asRuntimeError(err, 'INFERENCE_FAILED').toJSON() };
  }
}

async function runSession(session: ort.InferenceSession, given: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const name in given) {
    const t = given[name];
    feeds[name] = new ort.Tensor(t.type as ort.Tensor.Type, t.data as ort.Tensor.DataType, t.dims);
  }
  let out: ort.InferenceSession.ReturnType;
  try {
    out = await session.run(feeds);
  } catch (err) {
    throw new RuntimeError('INFERENCE_FAILED', `inference failed: ${(err as Error).message ?? err}`);
  }
  const outputs: Record<string, HostTensor> = {};
  for (const name in out) {
    const value = out[name];
    if (value instanceof ort.Tensor) outputs[name] = widenFloat16({ type: value.type, dims: [...value.dims], data: value.data as HostTensor['data'] });
  }
  return outputs;
}

/**
 * Runs merged into one session.run (merge-runs.ts). Anything unusual — a run that fails its checks,
 * a failed merged run, outputs that do not split by rows — sends the runs concerned through runOne,
 * so each gets the answer or the error it would have had alone.
 */
async function runMerged(group: RunRequest[], transfer: ArrayBuffer[]): Promise<RunResult[]> {
  const loaded = sessions.get(group[0].handle);
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
  const results: Array<Promise<RunResult>> = alone.map((r) => runOne(r, transfer));
  let parts: Array<Record<string, HostTensor>> | undefined;
  if (loaded && merged.length > 1) {
    const { feeds, rows } = concatRuns(merged.map((r) => r.feeds));
    parts = await runSession(loaded.session, feeds).then((out) => splitRows(out, rows), () => undefined);
  }
  if (parts) {
    const split = parts;
    merged.forEach((r, i) => {
      prepareTransfer(split[i], transfer);
      results.push(Promise.resolve({ id: r.id, ok: true, outputs: split[i], merged: true }));
    });
  } else for (const r of merged) results.push(runOne(r, transfer));
  return Promise.all(results);
}

/** Mergeable runs of one model with the same input layout, up to MAX_MERGED_ROWS rows a group. */
function groupRuns(runs: RunRequest[]): RunRequest[][] {
  const groups: RunRequest[][] = [];
  const open = new Map<string, { runs: RunRequest[]; rows: number }>();
  for (const r of runs) {
    const info = r.mergeable ? sessions.get(r.handle)?.info : undefined;
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

async function run(runs: RunRequest[]): Promise<void> {
  const transfer: ArrayBuffer[] = [];
  // Started together: each session.run() defers to setImmediate, so the whole batch executes in one
  // turn of the worker's loop and goes back as one message.
  const results = await Promise.all(groupRuns(runs).map((g) => (g.length === 1 ? runOne(g[0], transfer).then((r) => [r]) : runMerged(g, transfer))));
  post({ op: 'results', results: results.flat() }, transfer);
}

// Work under way, so `close` can wait for it: ending the thread while onnxruntime is inside
// session.run() aborts the whole process (a Napi::Error thrown from native code, seen here with
// worker.terminate()), so the host never terminates a busy worker; it asks it to close.
const busy = new Set<Promise<void>>();
function track(p: Promise<void>): void {
  busy.add(p);
  void p.finally(() => busy.delete(p));
}

async function close(): Promise<void> {
  while (busy.size > 0) await Promise.allSettled([...busy]);
  for (const { session } of sessions.values()) await session.release().catch(() => {});
  sessions.clear();
  // With the port closed nothing keeps the thread's loop alive: it ends by itself (checked),
  // which is safer than process.exit() should anything native still be finishing.
  port.close();
}

port.on('message', (msg: ToWorker) => {
  switch (msg.op) {
    case 'load':
      return track(load(msg));
    case 'run':
      return track(run(msg.runs));
    case 'release':
      return track(release(msg));
    case 'close':
      return void close();
    case 'crash':
      throw new Error('simulated worker crash (test hook)');
  }
});
post({ op: 'ready' });
