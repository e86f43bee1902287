// The README's commands run as written: every fenced block marked `sh runnable` is run as one shell
// script (a `flotilla` on PATH is the built CLI; ids pass between lines through shell variables and `jq`)
// against one fresh control plane, block after block in README order, in a folder with what the README
// says it holds; every line must exit 0.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
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

/**
 * The README's other ```sh blocks that show `flotilla` commands, by their first line, with why each does
 * not run here. A new block is either marked `sh runnable` or added here with its reason.
 */
const SKIPPED: Record<string, string> = {
  'flotilla datasets push demo/images --name shapes                    # folder → tar upload; or a .tar file': 'needs an image folder and churn versions 3–5 that retraining and optimizing leave; [optional] flags',
  'flotilla datasets push frames.npy --name vad-frames          # numpy array [n, …]: feeds the model\'s one caller input': 'needs a VAD model and its tensor datasets',
  'flotilla models push silero_vad.onnx --name vad': 'needs silero_vad.onnx and a running agent (curl to its local API)',
};

/** The first non-blank line of every ```sh block (not the runnable ones) that shows a `flotilla` command. */
function otherFlotillaBlocks(markdown: string): string[] {
  const blocks = [...markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
  return blocks.filter((b) => /^flotilla /m.test(b)).map((b) => b.split('\n').find((l) => l.trim())!.trim());
}

describe('README runnable commands', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  before(async () => {
    cp = await startControlPlane();
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-readme-'));
    const bin = path.join(dir, 'bin');
    await mkdir(bin);
    await writeFile(path.join(bin, 'flotilla'), `#!/bin/sh\nexec "${process.execPath}" "${path.join(ROOT, 'bin', 'flotilla.js')}" "$@"\n`);
    await chmod(path.join(bin, 'flotilla'), 0o755);
    await writeFile(path.join(dir, 'model.onnx'), gemmModel({ seed: 1 }));
    // The monitoring section's `reference.csv`: the model's 8 features with its outputs.
    await writeFile(path.join(dir, 'reference.csv'), rowsToCsv(generateRows(500, 1)));
    // The datasets section's `sensors.csv`: the same 8 features with region and label.
    await writeFile(path.join(dir, 'sensors.csv'), tabularToCsv(makeTabularRows({ n: 300, seed: 2 })));
    await symlink(path.join(ROOT, 'firmware-bundles'), path.join(dir, 'firmware-bundles'));
    env = { PATH: `${bin}:${process.env.PATH ?? ''}`, HOME: dir, FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
  });
  after(async () => {
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('every other block of flotilla commands is on the skip list with its reason (and the list has no stale entries)', async () => {
    const firstLines = otherFlotillaBlocks(await readFile(path.join(ROOT, 'README.md'), 'utf8'));
    assert.deepEqual(firstLines.filter((l) => !(l in SKIPPED)), [], 'blocks neither runnable nor skipped with a reason');
    assert.deepEqual(Object.keys(SKIPPED).filter((k) => !firstLines.includes(k)), [], 'skip-list entries that match no block');
  });

  test('the README has runnable blocks and each runs as written', async () => {
    const blocks = runnableBlocks(await readFile(path.join(ROOT, 'README.md'), 'utf8'));
    assert.ok(blocks.length >= 13, `found ${blocks.length} runnable blocks`);
    for (const block of blocks) {
      const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile('/bin/sh', ['-c', `set -eux\n${block}`], { cwd: dir, env, timeout: 120_000 }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr })),
      );
      assert.equal(r.code, 0, `README block failed:\n${block}\n--- stderr (each line as it ran, the failing one last):\n${r.stderr.slice(-4000)}`);
    }
  });
});
