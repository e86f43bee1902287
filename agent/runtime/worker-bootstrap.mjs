// Entry of the inference worker thread. A worker does not inherit the parent's TypeScript loader:
// neither `node --import tsx` nor the `tsx` CLI makes `new Worker('x.ts')` work on Node 20 (both
// fail with ERR_UNKNOWN_FILE_EXTENSION, checked). So when the entry is a .ts file this registers
// tsx's ESM hooks in the worker first; a compiled .js entry is imported directly.
// Registering before the first import matters: a failed import of the same URL is cached.
import { workerData } from 'node:worker_threads';

const entry = workerData?.entry;
if (typeof entry !== 'string') throw new Error('worker-bootstrap.mjs needs workerData.entry (a file URL)');
if (entry.endsWith('.ts')) {
  const { register } = await import('tsx/esm/api');
  register();
}
await import(entry);
