// The README's commands run as written: every fenced block marked `sh runnable` is run as one shell
// script (a `flotilla` and a `flotilla-agent` on PATH are the built CLI and agent; ids pass between lines
// through shell variables and `jq`) against one fresh control plane, block after block in README order, in
// a folder with what the README says it holds (a checkout for `npm run demo:…`); every line must exit 0.
// The blocks start real agents themselves (`flotilla-agent … &`) and wait for them by polling state.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../agent/testing/harness.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { makeTabularRows, tabularToCsv } from '../server/training/synthetic-tabular.ts';
import { generateRows, rowsToCsv } from './helpers/device-stats.ts';
import { gemmModel } from './helpers/models.ts';

const ROOT = path.join(import.meta.dirname, '..');

/**
 * Every ```sh runnable block as one script, in order: a block's lines share the shell, so an id one
 * command prints (`DEP=$(flotilla --json deployments | jq -r ...)`) feeds the next; `set -eu` stops at
 * the first failing line and `set -x` names it on stderr.
 */
function runnableBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```sh runnable\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
}

/** The first non-blank line of every ```sh block (not the runnable ones) that shows a `flotilla` command. */
function otherFlotillaBlocks(markdown: string): string[] {
  const blocks = [...markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
  return blocks.filter((b) => /^flotilla /m.test(b)).map((b) => b.split('\n').find((l) => l.trim())!.trim());
}

/** Fails early, naming the port, when the README's agent cannot have its default local API port. */
async function assertPortFree(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (err) => reject(new Error(`port ${port} (the agent's default local API port, which the README's curl lines use) is taken: ${err.message}`)));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}

/** The pids the `flotilla-agent` wrapper recorded: agents the blocks started in the background. */
async function stopAgents(pidFile: string): Promise<void> {
  const pids = (await readFile(pidFile, 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (const pid of pids.filter(alive)) process.kill(pid, 'SIGTERM');
  await waitFor(() => !pids.some(alive), 'the README agents to stop', 15_000).catch(() => pids.filter(alive).forEach((pid) => process.kill(pid, 'SIGKILL')));
}

describe('README runnable commands', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  before(async () => {
    await assertPortFree(8481);
    cp = await startControlPlane();
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-readme-'));
    const bin = path.join(dir, 'bin');
    await mkdir(bin);
    await writeFile(path.join(bin, 'flotilla'), `#!/bin/sh\nexec "${process.execPath}" "${path.join(ROOT, 'bin', 'flotilla.js')}" "$@"\n`);
    // The built agent, as the package's bin runs it; its pid is recorded so the test stops what the blocks started.
    await writeFile(path.join(bin, 'flotilla-agent'), `#!/bin/sh\necho $$ >> "${path.join(dir, 'agent.pids')}"\nexec "${path.join(ROOT, 'bin', 'flotilla-agent.js')}" "$@"\n`);
    await chmod(path.join(bin, 'flotilla'), 0o755);
    await chmod(path.join(bin, 'flotilla-agent'), 0o755);
    // A checkout, for `npm run demo:shapes` / `demo:vad` (npm runs them in this folder; they import from the repository).
    for (const f of ['package.json', 'node_modules', 'scripts']) await symlink(path.join(ROOT, f), path.join(dir, f));
    await writeFile(path.join(dir, 'model.onnx'), gemmModel({ seed: 1 }));
    // The monitoring section's `reference.csv`: the model's 8 features with its outputs.
    await writeFile(path.join(dir, 'reference.csv'), rowsToCsv(generateRows(500, 1)));
    // The datasets section's `sensors.csv`: the same 8 features with region and label.
    await writeFile(path.join(dir, 'sensors.csv'), tabularToCsv(makeTabularRows({ n: 300, seed: 2 })));
    await symlink(path.join(ROOT, 'firmware-bundles'), path.join(dir, 'firmware-bundles'));
    env = {
      PATH: `${bin}:${process.env.PATH ?? ''}`,
      HOME: dir,
      FLOTILLA_URL: cp.url,
      FLOTILLA_TOKEN: cp.adminToken,
      FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg'),
      // The agents' own variables: a short probation and reconnect window so updates settle in seconds.
      FLOTILLA_AGENT_PROBATION_MS: '200',
      FLOTILLA_AGENT_RECONNECT_MIN_MS: '100',
      FLOTILLA_AGENT_RECONNECT_MAX_MS: '1000',
      FLOTILLA_AGENT_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG ?? 'warn',
      npm_config_update_notifier: 'false',
    };
  });
  after(async () => {
    await stopAgents(path.join(dir, 'agent.pids'));
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('every block of flotilla commands is marked runnable (none is left to prose or skipped)', async () => {
    assert.deepEqual(otherFlotillaBlocks(await readFile(path.join(ROOT, 'README.md'), 'utf8')), [], 'blocks of flotilla commands not marked `sh runnable`');
  });

  test('the README has runnable blocks and each runs as written', async (t) => {
    const blocks = runnableBlocks(await readFile(path.join(ROOT, 'README.md'), 'utf8'));
    assert.ok(blocks.length >= 18, `found ${blocks.length} runnable blocks`);
    for (const block of blocks) {
      const started = Date.now();
      const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile('/bin/sh', ['-c', `set -eux\n${block}`], { cwd: dir, env, timeout: 120_000 }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr })),
      );
      t.diagnostic(`${((Date.now() - started) / 1000).toFixed(1)} s: ${block.split('\n')[0].slice(0, 60)}`);
      assert.equal(r.code, 0, `README block failed:\n${block}\n--- stderr (each line as it ran, the failing one last):\n${r.stderr.slice(-4000)}`);
    }
  });
});
