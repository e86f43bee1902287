// Entry of the training worker thread. A worker does not inherit the parent's TypeScript loader
// (neither `node --import tsx` nor the `tsx` CLI makes `new Worker('x.ts')` work on Node 20), so for
// a .ts entry this registers tsx's ESM hooks first; a compiled .js entry is imported directly.
// Same approach as agent/runtime/worker-bootstrap.mjs (the server may not import agent/).
import { workerData } from 'node:worker_threads';

const entry = workerData?.entry;
if (typeof entry !== 'string') throw new Error('worker-bootstrap.mjs needs workerData.entry (a file URL)');
if (entry.endsWith('.ts')) {
  const { register } = await import('tsx/esm/api');
  register();
}
await import(entry);
