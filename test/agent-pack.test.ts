// The installable agent (`npm run pack:agent`): the tarball unpacked into an empty folder, next to
// nothing but the dependencies it declares, enrolls with a real control plane, receives a signed
// deployment over MQTT and serves it. Offline: the declared dependencies (onnxruntime-node, sharp
// and theirs) are linked from this repository's node_modules instead of downloaded; the agent's own
// code resolves only from the empty folder, so anything it needs and does not declare fails here.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { api, freePort, REPO, waitFor } from '../agent/testing/harness.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

const run = promisify(execFile);

/** Links `name` and, recursively, its dependencies (those installed here) into `modules`. */
async function linkWithDependencies(name: string, modules: string, seen = new Set<string>()): Promise<void> {
  if (seen.has(name)) return;
  seen.add(name);
  const from = path.join(REPO, 'node_modules', name);
  if (!existsSync(from)) return; // an optional dependency for another platform
  await mkdir(path.dirname(path.join(modules, name)), { recursive: true });
  await symlink(from, path.join(modules, name), 'dir');
  const pkg = JSON.parse(await readFile(path.join(from, 'package.json'), 'utf8'));
  for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) await linkWithDependencies(dep, modules, seen);
}

describe('installable agent package', { timeout: 180_000 }, () => {
  let dir: string;
  let cp: TestPlane;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-agent-pack-'));
    cp = await startControlPlane();
  });
  after(async () => {
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('packs the compiled agent with only its native dependencies; installed alone, it enrolls and serves a deployment', async () => {
    const { stdout } = await run(process.execPath, [path.join(REPO, 'scripts', 'pack-agent.mjs'), path.join(dir, 'out')], { cwd: REPO, timeout: 120_000 });
    const tarball = stdout.trim().split('\n').at(-1)!;
    assert.match(path.basename(tarball), /^flotilla-agent-\d+\.\d+\.\d+\.tgz$/);

    const app = path.join(dir, 'gateway');
    const modules = path.join(app, 'node_modules');
    await mkdir(path.join(modules, 'flotilla-agent'), { recursive: true });
    await run('tar', ['xzf', tarball, '-C', path.join(modules, 'flotilla-agent'), '--strip-components=1']);
    const pkg = JSON.parse(await readFile(path.join(modules, 'flotilla-agent', 'package.json'), 'utf8'));
    assert.deepEqual(Object.keys(pkg.dependencies).sort(), ['onnxruntime-node', 'sharp']);
    assert.ok(existsSync(path.join(modules, 'flotilla-agent', 'flotilla-agent.service')), 'the systemd unit ships with it');
    const linked = new Set<string>();
    for (const dep of Object.keys(pkg.dependencies)) await linkWithDependencies(dep, modules, linked);
    await writeFile(path.join(app, 'package.json'), '{"private":true}\n');

    // A model, signing keys and a bundle on the control plane, and an enrollment token.
    const env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    const cli = async (...args: string[]) => {
      const r = await runCli(['--json', ...args], env);
      assert.equal(r.code, 0, `flotilla ${args.join(' ')}: ${r.stderr}`);
      return JSON.parse(r.stdout);
    };
    const keys = await cli('keys', 'init', '--root-key', path.join(dir, 'root.key'));
    await writeFile(path.join(dir, 'model.onnx'), gemmModel({ seed: 3 }));
    await cli('models', 'push', path.join(dir, 'model.onnx'), '--name', 'tabular-demo');
    await cli('bundles', 'build', 'tabular-demo@1', '--def', path.join(REPO, 'firmware-bundles', 'tabular-demo'));
    const token = (await cli('enroll-tokens', 'create')).token;

    // The installed bin, started from the gateway folder (its shebang carries the node options).
    const port = await freePort();
    const dataDir = path.join(dir, 'agent-data');
    const bin = path.join(modules, 'flotilla-agent', 'bin', 'flotilla-agent.js');
    const child = spawn(bin, ['--server', cp.url, '--enroll-token', token, '--trust-root', keys.rootPublicKey, '--data-dir', dataDir, '--api-port', String(port), '--probation-ms', '100'], {
      cwd: app,
      env: { PATH: process.env.PATH ?? '', HOME: dir, FLOTILLA_AGENT_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d));
    child.stderr.on('data', (d: Buffer) => (output += d));
    const exited = new Promise((r) => child.on('exit', r));
    try {
      await waitFor(() => api(port, 'GET', '/healthz').then((r) => r.status === 200), 'installed agent up', 30_000).catch((err) => assert.fail(`${err.message}\n${output}`));
      const deviceId = JSON.parse(await readFile(path.join(dataDir, 'identity.json'), 'utf8')).deviceId;
      await cli('deploy', 'tabular-demo@1', '--device', deviceId);
      await waitFor(async () => (await cp.api('GET', `/api/v1/devices/${deviceId}`)).body.updateState === 'active', 'deployment active', 60_000).catch((err) => assert.fail(`${err.message}\n${output}`));
      const r = await api(port, 'POST', '/v1/predict', { features: Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`f${i}`, i / 8])) });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.bundle.model.name, 'tabular-demo');
      assert.equal(r.body.predictions.length, 3);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});
