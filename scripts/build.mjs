// `npm run build:js`: compiles each program (agent, CLI, control plane, simulator) into one esbuild bundle, with
// its worker-thread entries next to it, under dist/<program>/. Plain JavaScript so that it runs before
// anything is compiled (npm's `prepare` on install, `pretest`, `prestart`).
//
// Why bundles and not `tsc` emit (measured on this 2-core machine, see ARCHITECTURE.md "Build"):
// `flotilla --help` 0.16 s CPU bundled vs 0.23 s from tsc's ~250 files (0.21 s with our code bundled
// but node_modules loaded file by file); agent RSS idle is the same for both (±3 MB); the build
// takes ~0.5 s instead of ~20 s (tsc type-checks; `npm run typecheck` still does that).
//
// Layout: each program's output is flat (entries and shared chunks in one folder), because the code
// finds its worker entries and migrations with `new URL('./x.js', import.meta.url)`, which must
// resolve to the same folder whichever chunk the code ended up in.
import { build } from 'esbuild';
import { cp, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist');

// Native add-ons and packages that load files next to themselves stay in node_modules.
const EXTERNAL = ['onnxruntime-node', 'onnxruntime-web', 'sharp', '@libsql/*', 'libsql'];

/** One bundle per program; `entries` maps output name → source. */
const PROGRAMS = {
  agent: { 'flotilla-agent': 'agent/main.ts', 'inference-worker': 'agent/runtime/inference-worker.ts' },
  cli: { flotilla: 'server/cli/main.ts' },
  server: { 'flotilla-server': 'server/main.ts', 'train-worker': 'server/training/train-worker.ts', 'analysis-worker': 'server/optimize/analysis-worker.ts' },
  // What SimulatorProcess (the simulator's test, the scale and shadow benches) starts: through tsx each
  // simulator process paid ≈ 1.5 s of CPU loading TypeScript (compiled ≈ 0.3 s) before it simulated anything. No worker
  // entry: its devices run stub-runtime.ts, never onnxruntime's inference worker.
  simulator: { 'flotilla-simulate': 'simulator/main.ts' },
};

// Bundled CommonJS dependencies call require() and read __dirname; an ESM bundle has neither.
const BANNER = [
  "import { createRequire as __flotillaRequire } from 'node:module';",
  "import { fileURLToPath as __flotillaPath } from 'node:url';",
  'const require = __flotillaRequire(import.meta.url);',
  'const __filename = __flotillaPath(import.meta.url);',
  "const __dirname = __flotillaPath(new URL('.', import.meta.url));",
].join('\n');

async function buildProgram(name, entries) {
  const outdir = path.join(DIST, name);
  await rm(outdir, { recursive: true, force: true });
  await build({
    absWorkingDir: ROOT,
    entryPoints: entries,
    outdir,
    bundle: true,
    splitting: true, // dynamic import() of a command or of sharp stays lazy
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external: EXTERNAL,
    entryNames: '[name]',
    chunkNames: 'chunk-[hash]',
    banner: { js: BANNER },
    sourcemap: 'linked',
    logLevel: 'warning',
  });
}

const only = process.argv.slice(2);
const started = performance.now();
await Promise.all(Object.entries(PROGRAMS).filter(([name]) => !only.length || only.includes(name)).map(([name, entries]) => buildProgram(name, entries)));
if (!only.length || only.includes('server')) await cp(path.join(ROOT, 'server', 'db', 'migrations'), path.join(DIST, 'server', 'migrations'), { recursive: true });
console.log(`built ${only.length ? only.join(', ') : Object.keys(PROGRAMS).join(', ')} into dist/ in ${Math.round(performance.now() - started)} ms`);
