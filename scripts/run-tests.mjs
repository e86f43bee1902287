// `npm test`'s runner: node:test's run() over scripts/test-files.mjs' list, slowest first, two files at a
// time, each in its own process (started with this process's --import tsx), TAP on stdout, exit 1 on any
// failure or cancellation. Why not `node --test $(list)`: Node 20 sorts the file arguments by name, so the
// slowest-first order never reached the runner and the longest files (test/zoo*, test/web-*) ran last.
import { run } from 'node:test';
import { tap } from 'node:test/reporters';
import { orderedTestFiles } from './test-files.mjs';

// Files named on the command line run in that order instead (`node --import tsx scripts/run-tests.mjs a b`).
const files = process.argv.length > 2 ? process.argv.slice(2) : orderedTestFiles();
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
});
stream.compose(tap).pipe(process.stdout);
