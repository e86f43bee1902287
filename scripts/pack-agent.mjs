// `npm run pack:agent [-- <out dir>]`: the installable `flotilla-agent` package for gateways.
// The compiled agent (dist/agent: one bundle with mqtt, pino, zod, commander inside) plus its
// launcher and systemd unit; its only dependencies are the two native add-ons the bundle leaves
// out, onnxruntime-node and sharp (both ship prebuilt linux x64 and arm64 binaries). No hono,
// drizzle, libsql, aedes, onnxruntime-web, CLI or TypeScript. Prints the tarball's path.
import { execFileSync } from 'node:child_process';
import { cp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.resolve(process.argv[2] ?? path.join(ROOT, 'dist'));
const stage = path.join(ROOT, 'dist', 'pack-agent');

execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs'), 'agent'], { stdio: 'inherit' });
const root = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8'));
const NATIVE = ['onnxruntime-node', 'sharp'];

await rm(stage, { recursive: true, force: true });
await mkdir(path.join(stage, 'dist'), { recursive: true });
await mkdir(path.join(stage, 'bin'), { recursive: true });
for (const f of await readdir(path.join(ROOT, 'dist', 'agent'))) {
  if (f.endsWith('.js')) await cp(path.join(ROOT, 'dist', 'agent', f), path.join(stage, 'dist', f));
}
await cp(path.join(ROOT, 'deploy', 'flotilla-agent.service'), path.join(stage, 'flotilla-agent.service'));
await writeFile(
  path.join(stage, 'bin', 'flotilla-agent.js'),
  [
    '#!/usr/bin/env -S node --max-semi-space-size=2 --v8-pool-size=1',
    '// The Flotilla edge agent (compiled). The node options keep the young generation small and V8 to one',
    '// background thread: see the',
    "// project's agent/README.md, \"Memory\".",
    "await import('../dist/flotilla-agent.js');",
    '',
  ].join('\n'),
  { mode: 0o755 },
);
const pkg = {
  name: 'flotilla-agent',
  version: root.version,
  description: 'Flotilla edge agent: enrolls, receives signed model bundles over MQTT, verifies, smoke-tests and serves them locally',
  type: 'module',
  license: root.license,
  engines: root.engines,
  bin: { 'flotilla-agent': 'bin/flotilla-agent.js' },
  files: ['bin', 'dist', 'flotilla-agent.service', 'README.md'],
  dependencies: Object.fromEntries(NATIVE.map((d) => [d, root.dependencies[d]])),
};
await writeFile(path.join(stage, 'package.json'), JSON.stringify(pkg, null, 2) + '\n');
await writeFile(
  path.join(stage, 'README.md'),
  '# flotilla-agent\n\nThe Flotilla edge agent, compiled. Install and run it as described in the Flotilla repository\'s agent/README.md ("Install on a gateway"); `flotilla-agent --help` lists its options.\n',
);
await mkdir(out, { recursive: true });
const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', out], { cwd: stage, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }));
console.log(path.join(out, packed[0].filename));
