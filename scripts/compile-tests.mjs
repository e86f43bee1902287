// `npm test`'s compile step: every TypeScript file of the tested folders transpiled by esbuild into a `.js`
// beside it (gitignored), its relative `.ts` imports rewritten to `.js`, so that each test process loads
// plain JavaScript with no loader.
//
// Why: through `--import tsx` every module a test process loads, node_modules included, goes through tsx's
// ESM hooks, which Node 20 runs on a loader thread of their own, one message each way per module. Measured
// on this 2-core machine: a process paid ≈ 0.55 s of CPU for tsx alone, and loading the control plane's
// ≈ 850 modules took 2.9 s of CPU through tsx against 1.2 s compiled — over 200-odd test files, minutes of
// the suite's CPU.
//
// Why beside the sources, not in a folder of their own: tests and code find fixtures, migrations, bin/ and
// each other relative to their own file (import.meta.dirname), which must stay the source's folder; and the
// code that picks a worker entry by its own extension (`import.meta.url.endsWith('.ts')`) then starts the
// compiled worker beside it directly, as the dist build does. Each `.js` holds one source file (relative
// imports stay imports), with an inline source map, so stack traces name the `.ts` lines.
import { build } from 'esbuild';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Every folder whose TypeScript a test may load (web/src: its .ts modules; .tsx is the console's, built by Vite). */
export const COMPILED_FOLDERS = ['server', 'agent', 'protocol', 'firmware-bundles', 'test', 'simulator', 'bench', 'scripts', 'web/src'];
const BANNER = '// Compiled by scripts/compile-tests.mjs for `npm test` (gitignored): the source is the .ts file beside this one.';

async function walk(rel, out) {
  for (const e of await readdir(path.join(ROOT, rel), { withFileTypes: true })) {
    const child = `${rel}/${e.name}`;
    if (e.isDirectory()) {
      if (e.name !== 'node_modules' && e.name !== 'dist') await walk(child, out);
    } else if (e.isFile()) out.push(child);
  }
  return out;
}

/** Relative imports stay imports, of the compiled sibling: `./x.ts` → `./x.js`. */
const relativeImportsToJs = {
  name: 'relative-imports-to-js',
  setup(b) {
    b.onResolve({ filter: /^\.\.?\// }, (args) => (args.kind === 'entry-point' ? undefined : { path: args.path.replace(/\.ts$/, '.js'), external: true }));
  },
};

/** Removes what compileTests wrote (the runner does when the run ends: the sources' folders stay as they were). */
export async function removeCompiled(sources) {
  await Promise.all(sources.map((f) => rm(path.join(ROOT, f.replace(/\.ts$/, '.js')), { force: true })));
}

/** Compiles every .ts of COMPILED_FOLDERS to the .js beside it, and returns the sources; removes compiled files whose source is gone (a run that was killed). */
export async function compileTests() {
  const files = (await Promise.all(COMPILED_FOLDERS.map((f) => walk(f, [])))).flat();
  const sources = files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
  const have = new Set(sources);
  for (const f of files.filter((f) => f.endsWith('.js') && !have.has(f.replace(/\.js$/, '.ts')))) {
    const head = (await readFile(path.join(ROOT, f), 'utf8')).slice(0, BANNER.length);
    if (head === BANNER) await rm(path.join(ROOT, f));
  }
  await build({
    absWorkingDir: ROOT,
    entryPoints: sources,
    outdir: ROOT,
    outbase: ROOT,
    bundle: true, // only so that the plugin sees every import; each one is external
    packages: 'external',
    plugins: [relativeImportsToJs],
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: 'inline',
    banner: { js: BANNER },
    logLevel: 'warning',
  });
  return sources;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href && process.argv[2] === '--clean') {
  const files = (await Promise.all(COMPILED_FOLDERS.map((f) => walk(f, [])))).flat();
  await removeCompiled(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')));
} else if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const started = Date.now();
  const sources = await compileTests();
  process.stderr.write(`compiled ${sources.length} files in ${Date.now() - started} ms (they stay until \`npm test\` or \`node scripts/compile-tests.mjs --clean\`)\n`);
}
