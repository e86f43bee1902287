// `npm test`'s file list: every *.test.ts under the tested folders, the slowest first.
//
// Why this order: `scripts/run-tests.mjs` runs the files in the order given, two at a time (`node --test
// a b c` would not: Node 20 sorts its file arguments by name). In name order the longest files (test/zoo*, test/web-*) came last, so the suite ended with one slot
// busy on a 30 s file and the other idle. Longest first (by test/durations.json, seconds per file from
// a full run) lets the short files fill the gaps at the end. A file not in the list yet goes first,
// since new files are mostly integration tests; the order never changes which files run.
//
//   node scripts/test-files.mjs                  the ordered list, one path a line (orderedTestFiles())
//   node scripts/test-files.mjs --record <log>   rewrite test/durations.json from a full run's TAP
//                                                output (`npm test > log`): each top-level entry's
//                                                duration_ms, added to the file whose source names it
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FOLDERS = ['test', 'protocol', 'server', 'agent', 'firmware-bundles'];
const DURATIONS = path.join(ROOT, 'test', 'durations.json');

/** Every *.test.ts under the folders (not node_modules), as repository-relative POSIX paths, by name. */
function testFiles() {
  const found = [];
  const walk = (rel) => {
    for (const e of readdirSync(path.join(ROOT, rel), { withFileTypes: true })) {
      const child = `${rel}/${e.name}`;
      if (e.isDirectory() && e.name !== 'node_modules') walk(child);
      else if (e.isFile() && e.name.endsWith('.test.ts')) found.push(child);
    }
  };
  for (const f of FOLDERS) walk(f);
  return found.sort();
}

/** Top-level entries of a TAP log: name and duration in seconds. */
function topLevel(tap) {
  const lines = tap.split('\n');
  const entries = [];
  lines.forEach((line, i) => {
    const m = /^(?:not )?ok \d+ - (.*)$/.exec(line);
    if (!m) return;
    const d = lines.slice(i + 1, i + 5).map((l) => /^ {2}duration_ms: ([\d.]+)/.exec(l)).find(Boolean);
    if (d) entries.push({ name: m[1].replace(/\\#/g, '#').replace(/\\\\/g, '\\'), seconds: Number(d[1]) / 1000 });
  });
  return entries;
}

/** The file whose source declares `name` (as a describe/test title first, else anywhere), if exactly one. */
function fileOf(name, sources) {
  const quoted = [`'${name}'`, `"${name}"`, `\`${name}\``];
  const tries = [(s) => quoted.some((q) => new RegExp(`\\b(?:describe|test|it)\\(${q.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`).test(s)), (s) => s.includes(name), (s) => s.includes(name.slice(0, 40))];
  for (const t of tries) {
    const hits = [...sources].filter(([, s]) => t(s)).map(([f]) => f);
    if (hits.length === 1) return hits[0];
  }
  return undefined;
}

/** Every test file, the slowest first by test/durations.json (unknown files first, then name order). */
export function orderedTestFiles() {
  // Never fail here: an empty list would run nothing, and that passes.
  let seconds = {};
  try {
    seconds = JSON.parse(readFileSync(DURATIONS, 'utf8'));
  } catch (err) {
    process.stderr.write(`test-files: ${DURATIONS} unreadable (${err.message}); running the files in name order\n`);
  }
  const cost = (f) => seconds[f] ?? Number.MAX_VALUE;
  // Stable sort over the name order: equal costs (and new files) keep name order.
  return testFiles().sort((a, b) => cost(b) - cost(a));
}

/** Rewrites test/durations.json from a full run's TAP log. */
function record(log) {
  const files = testFiles();
  const sources = new Map(files.map((f) => [f, readFileSync(path.join(ROOT, f), 'utf8')]));
  const seconds = {};
  const unmatched = [];
  for (const e of topLevel(readFileSync(log, 'utf8'))) {
    const f = fileOf(e.name, sources);
    if (f) seconds[f] = (seconds[f] ?? 0) + e.seconds;
    else unmatched.push(e.name);
  }
  // A file none of whose entries matched is still recorded (as 0 s), so it is not taken for a new file.
  for (const f of files) seconds[f] ??= 0;
  const sorted = Object.entries(seconds).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  writeFileSync(DURATIONS, `${JSON.stringify(Object.fromEntries(sorted.map(([f, s]) => [f, Math.round(s * 10) / 10])), null, 2)}\n`);
  process.stderr.write(`recorded ${sorted.length} of ${files.length} files; top-level entries matching no single file (their seconds are not counted): ${unmatched.length ? unmatched.join(' | ') : 'none'}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  if (process.argv[2] === '--record') record(process.argv[3]);
  else process.stdout.write(`${orderedTestFiles().join('\n')}\n`);
}
