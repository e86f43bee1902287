/**
 * The inference worker (a worker_threads entry, started through `worker-bootstrap.mjs`). It owns
 * the onnxruntime sessions (a `SessionTable`), because `session.run()` is a synchronous native call
 * that would otherwise block the agent's event loop (DESIGN.md).
 *
 * Protocol: see `worker-protocol.ts`. Inputs arrive as transferred typed arrays and are wrapped in
 * `ort.Tensor` without a copy; output buffers are transferred back.
 */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { asRuntimeError } from './errors.ts';
import { SessionTable } from './session-table.ts';
import type { FromWorker, RunRequest, ToWorker } from './worker-protocol.ts';

if (!parentPort) throw new Error('inference-worker.ts must run in a worker thread');
const port = parentPort;
const table = new SessionTable();

/**
 * Test hook (only inference-worker.test.ts passes `workerData.testHoldRuns`): a 'run' message holds
 * this thread before draining the queue behind it, until the test has posted what it wants queued.
 * Int32 slot 1 = "holding" (set here), slot 0 = "go on" (set by the test, once for good).
 */
const testHold = (workerData as { testHoldRuns?: SharedArrayBuffer } | undefined)?.testHoldRuns;
const holdGate = testHold ? new Int32Array(testHold) : undefined;
function holdForTest(gate: Int32Array): void {
  Atomics.store(gate, 1, 1);
  Atomics.wait(gate, 0, 0, 60_000); // bounded: a broken test must not hang the thread for good
}

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

function runBatch(runs: RunRequest[]): void {
  const transfer: ArrayBuffer[] = [];
  void table.run(runs, transfer).then((results) => post({ op: 'results', results }, transfer));
}

/**
 * A 'run' message also takes the messages already waiting behind it (receiveMessageOnPort), so
 * runs the host sent in several messages while this thread was busy execute, merge and are answered
 * together: one wake-up and one answer for them instead of one each. Other messages keep their
 * place (the runs read before one are started first); the host sends a release only once the
 * handle's runs are answered (ModelHost's drained release).
 */
function onRun(first: RunRequest[]): void {
  let runs = first;
  if (holdGate) holdForTest(holdGate);
  for (let next = receiveMessageOnPort(port); next; next = receiveMessageOnPort(port)) {
    const msg = next.message as ToWorker;
    if (msg.op === 'run') {
      runs = runs.concat(msg.runs);
      continue;
    }
    runBatch(runs);
    runs = [];
    handle(msg);
  }
  if (runs.length > 0) runBatch(runs);
}

function handle(msg: ToWorker): void {
  switch (msg.op) {
    case 'load':
      return void table.load(msg.handle, msg.modelBytes ?? msg.modelPath, msg.sessionOptions, msg.externalDataFolder).then(
        (info) => post({ op: 'loaded', id: msg.id, info }),
        (err) => post({ op: 'failed', id: msg.id, error: asRuntimeError(err, 'MODEL_LOAD_FAILED').toJSON() }),
      );
    case 'run':
      return onRun(msg.runs);
    case 'release':
      return void table.release(msg.handle).then(() => post({ op: 'released', id: msg.id }));
    case 'close':
      // With the port closed nothing keeps the thread's loop alive: it ends by itself (checked),
      // which is safer than process.exit() should anything native still be finishing.
      return void table.close().then(() => port.close());
    case 'crash':
      throw new Error('simulated worker crash (test hook)');
  }
}

port.on('message', handle);
post({ op: 'ready' });
