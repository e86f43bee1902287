// `npm run typecheck` (and the start of `npm test`): the two tsc projects — the root (server, agent,
// protocol, tests, …) and the console (web/, its own DOM/JSX options) — checked at the same time.
//
// Why in parallel: each tsc is single-threaded, and on a clean clone there is no incremental cache, so
// one after the other they left a core idle for the whole check. Measured on this 2-core machine: the
// root ≈ 45 s CPU, web ≈ 36 s CPU (it checks the server's route files again for `AppType`), so side by
// side the check takes about as long as the root alone. Output is printed per project once it ends,
// so two projects' errors never interleave; the exit code is non-zero when either fails.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');

/** Runs one tsc project; resolves with its exit code after printing what it said. */
function check(label, args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [TSC, '--noEmit', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (err) => resolve(finish(label, 1, `${out}${err.message}\n`)));
    child.on('close', (code) => resolve(finish(label, code ?? 1, out)));
  });
}

function finish(label, code, out) {
  if (out) process.stdout.write(out.endsWith('\n') ? out : `${out}\n`);
  if (code !== 0) process.stderr.write(`typecheck: ${label} failed (tsc exit ${code})\n`);
  return code;
}

const codes = await Promise.all([check('root (tsconfig.json)', []), check('web (web/tsconfig.json)', ['-p', 'web'])]);
process.exit(codes.some((c) => c !== 0) ? 1 : 0);
