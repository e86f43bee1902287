// `npm test`'s runner: compiles the TypeScript to plain JavaScript beside it (scripts/compile-tests.mjs),
// then node:test's run() over scripts/test-files.mjs' list, slowest first, two files at a time, each in its
// own process (with this process's flags: `--enable-source-maps` for stack traces in the .ts), TAP on
// stdout, exit 1 on any failure or cancellation. Why not `node --test $(list)`: Node 20 sorts the file
// arguments by name, so the slowest-first order never reached the runner and the longest files (test/zoo*,
// test/web-*) ran last.
import { run } from 'node:test';
import { tap } from 'node:test/reporters';
import { compileTests, removeCompiled } from './compile-tests.mjs';
import { orderedTestFiles } from './test-files.mjs';

const compiled = await compileTests();
// Files named on the command line run in that order instead (`node scripts/run-tests.mjs a.test.ts b.test.ts`).
const files = (process.argv.length > 2 ? process.argv.slice(2) : orderedTestFiles()).map((f) => f.replace(/\.ts$/, '.js'));
if (files.length === 0) {
  process.stderr.write('run-tests: no test files found\n');
  process.exit(1);
}
let failures = 0;
// timeout: per file, as `--test-timeout` is for `node --test`; forceExit: each file's process ends when its
// tests are done, even with a handle left open (`--test-force-exit`).
const stream = run({ files, concurrency: 2, timeout: 300_000, forceExit: true });
stream.on('test:fail', () => failures++);
stream.on('end', () => {
  process.exitCode = failures > 0 ? 1 : 0;
  void removeCompiled(compiled);
});
// Interrupted (Ctrl-C): the compiled files go too; the next run would replace them anyway.
process.once('SIGINT', () => void removeCompiled(compiled).finally(() => process.exit(130)));
stream.compose(tap).pipe(process.stdout);
