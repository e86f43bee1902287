// Worker-thread side of ModelRunner: keeps a few sessions open (by artifact sha256) and answers one
// run at a time. onnxruntime's session.run blocks its thread, so it never runs on the HTTP thread.
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { EVAL_SESSION_OPTIONS } from '../optimize/runtime.ts';
import type { RunRequest, RunReply, TensorJson } from './model-runner.ts';

const port = parentPort;
if (!port) throw new Error('run-worker.ts must run in a worker thread');

/** Sessions kept open, least recently used first; each new one past the limit releases the oldest. */
const MAX_SESSIONS = 4;
const sessions = new Map<string, ort.InferenceSession>();

async function sessionFor(sha256: string, file: string): Promise<ort.InferenceSession> {
  let s = sessions.get(sha256);
  if (s) sessions.delete(sha256);
  else s = await ort.InferenceSession.create(file, EVAL_SESSION_OPTIONS);
  sessions.set(sha256, s);
  while (sessions.size > MAX_SESSIONS) {
    const [oldest, session] = sessions.entries().next().value!;
    sessions.delete(oldest);
    await session.release();
  }
  return s;
}

const ARRAYS: Record<string, (data: number[]) => ort.Tensor['data']> = {
  float32: (d) => Float32Array.from(d),
  float64: (d) => Float64Array.from(d),
  int32: (d) => Int32Array.from(d),
  int64: (d) => BigInt64Array.from(d, (x) => BigInt(Math.trunc(x))),
  int8: (d) => Int8Array.from(d),
  uint8: (d) => Uint8Array.from(d),
  bool: (d) => Uint8Array.from(d, (x) => (x ? 1 : 0)),
};

function toJson(t: ort.Tensor): TensorJson {
  const data = Array.from(t.data as ArrayLike<number | bigint | string>, (x) => (typeof x === 'bigint' ? Number(x) : typeof x === 'string' ? x : x));
  return { dims: [...t.dims], type: t.type, data: data as number[] };
}

let chain = Promise.resolve();
port.on('message', (req: RunRequest) => {
  chain = chain.then(async () => {
    let reply: RunReply;
    try {
      const session = await sessionFor(req.sha256, req.file);
      const feeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(req.inputs)) feeds[name] = new ort.Tensor(t.type as 'float32', ARRAYS[t.type](t.data as number[]) as Float32Array, t.dims);
      const start = performance.now();
      const out = await session.run(feeds);
      const latencyMs = performance.now() - start;
      reply = { id: req.id, ok: true, outputs: Object.fromEntries(Object.entries(out).map(([k, v]) => [k, toJson(v)])), latencyMs };
    } catch (err) {
      reply = { id: req.id, ok: false, message: err instanceof Error ? err.message : String(err) };
    }
    port.postMessage(reply);
  });
});
