// The README's commands run as written: every fenced block marked `sh runnable` is run as one shell
// script (a `flotilla` and a `flotilla-agent` on PATH are the built CLI and agent; ids pass between lines
// through shell variables and `jq`) against one fresh control plane, block after block in README order, in
// a folder with what the README says it holds (a checkout for `npm run demo:…`); every line must exit 0.
// The blocks start real agents themselves (`flotilla-agent … &`) and wait for them by polling state.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
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

/**
 * Stops the agents the blocks started in the background, by the pids the `flotilla-agent` wrapper
 * recorded; a pid counts only while it is still an agent (a block may have stopped one, and pids get reused).
 */
async function stopAgents(pidFile: string): Promise<void> {
  const pids = (await readFile(pidFile, 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);
  const alive = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('flotilla-agent');
    } catch {
      return false;
    }
  };
  const signal = (pid: number, sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone meanwhile */
    }
  };
  for (const pid of pids.filter(alive)) signal(pid, 'SIGTERM');
  await waitFor(() => !pids.some(alive), 'the README agents to stop', 15_000).catch(() => pids.filter(alive).forEach((pid) => signal(pid, 'SIGKILL')));
}

/** Each ```sh block that shows a session (`$ flotilla …` and then what it prints): the command and its output. */
function sessionExamples(markdown: string): Array<{ command: string; output: string }> {
  return [...markdown.matchAll(/^```sh\n\$ (flotilla [^\n]*)\n([\s\S]*?)^```$/gm)].map((m) => ({ command: m[1], output: m[2].trimEnd() }));
}

const BLOCKS = runnableBlocks(readFileSync(path.join(ROOT, 'README.md'), 'utf8'));

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
    assert.deepEqual(otherFlotillaBlocks(await readFile(path.join(ROOT, 'README.md'), 'utf8')), [], 'blocks of flotilla commands neither marked `sh runnable` nor a `$ flotilla` session');
  });

  test('each `$ flotilla …` example prints what the README shows', async () => {
    const examples = sessionExamples(await readFile(path.join(ROOT, 'README.md'), 'utf8'));
    assert.ok(examples.length >= 1, 'the README shows a session');
    for (const { command, output } of examples) {
      const printed = await new Promise<string>((resolve) => execFile('/bin/sh', ['-c', `${command} 2>&1`], { cwd: dir, env, timeout: 60_000 }, (_err, stdout) => resolve(stdout)));
      assert.equal(printed.trimEnd(), output, command);
    }
  });

  // One test per block, in README order (node:test runs a suite's tests one after another), so each
  // block has the runner's per-test timeout to itself; after a failed block the later ones are skipped.
  test(`the README has runnable blocks (${BLOCKS.length})`, () => assert.ok(BLOCKS.length >= 18, `found ${BLOCKS.length} runnable blocks`));
  let failed: string | undefined;
  for (const [i, block] of BLOCKS.entries()) {
    const first = block.split('\n')[0];
    test(`block ${i + 1} runs as written: ${first.slice(0, 70)}`, async (t) => {
      if (failed) return t.skip(`block ${failed} failed`);
      failed = String(i + 1);
      const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile('/bin/sh', ['-c', `set -eux\n${block}`], { cwd: dir, env, timeout: 150_000 }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr })),
      );
      assert.equal(r.code, 0, `README block failed:\n${block}\n--- stderr (each line as it ran, the failing one last):\n${r.stderr.slice(-4000)}`);
      failed = undefined;
    });
  }
});
