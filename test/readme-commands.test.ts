// The README's commands run as written: every fenced block marked `sh runnable` is run line by line
// through a shell (a `flotilla` on PATH is the built CLI) against a fresh control plane, in a folder
// with what the README says it holds; each line must exit 0.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

const ROOT = path.join(import.meta.dirname, '..');

/** The command lines of every ```sh runnable block, in order (comment-only and blank lines dropped). */
function runnableCommands(markdown: string): string[] {
  const blocks = [...markdown.matchAll(/^```sh runnable\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
  return blocks.flatMap((b) => b.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')));
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
    await symlink(path.join(ROOT, 'firmware-bundles'), path.join(dir, 'firmware-bundles'));
    env = { PATH: `${bin}:${process.env.PATH ?? ''}`, HOME: dir, FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
  });
  after(async () => {
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('the README has runnable blocks and each command in them succeeds', async () => {
    const commands = runnableCommands(await readFile(path.join(ROOT, 'README.md'), 'utf8'));
    assert.ok(commands.length >= 10, `found ${commands.length} runnable commands`);
    for (const line of commands) {
      const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile('/bin/sh', ['-c', line], { cwd: dir, env, timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr })),
      );
      assert.equal(r.code, 0, `README command failed: ${line}\n${r.stderr}`);
    }
  });
});
