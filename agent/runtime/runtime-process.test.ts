import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { makeFixtures, tabularReference, type Fixtures } from '../../test/fixtures/runtime-models.ts';

// The worker must start however the agent is launched (a worker does not inherit the parent's
// TypeScript loader), and stop() must leave nothing that keeps the process alive.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHILD = fileURLToPath(new URL('../../test/fixtures/runtime-host-child.ts', import.meta.url));

let fx: Fixtures;
before(async () => {
  fx = await makeFixtures();
});
after(() => fx.cleanup());

function run(command: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; exitedAt: number }> {
  return new Promise((resolve, reject) => {
    // Own process group: the tsx CLI runs node as a grandchild, which a plain kill would leave behind.
    const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, exitedAt: Date.now() });
    });
  });
}

const launchers: Array<[string, string, string[]]> = [
  ['node --import tsx', process.execPath, ['--import', 'tsx', CHILD]],
  ['the tsx CLI', `${ROOT}node_modules/.bin/tsx`, [CHILD]],
];

for (const [name, command, args] of launchers) {
  test(`under ${name}: the worker starts, answers, and stop() leaves no handles (the process exits by itself)`, async () => {
    const model = await fx.tabular(1);
    const r = await run(command, [...args, model]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { logits: number[]; whileRunning: string[]; afterStop: string[]; stoppedAt: number };
    const ref = tabularReference(1, new Float32Array(8).fill(1));
    report.logits.forEach((v, i) => assert.ok(Math.abs(v - ref[i]) < 1e-4));
    // stdout/stderr are pipes to this test (PipeWrap); everything else must be gone.
    const ours = (list: string[]) => list.filter((r) => r !== 'PipeWrap' && r !== 'TTYWrap');
    assert.ok(ours(report.whileRunning).includes('MessagePort'), `the running worker shows as an active resource (so the check below can see one): ${report.whileRunning}`);
    assert.deepEqual(ours(report.afterStop), []);
    const lingering = r.exitedAt - report.stoppedAt;
    console.log(`${name}: process exited ${lingering} ms after stop()`);
    assert.ok(lingering < 2000, `the process lingered ${lingering} ms after stop()`);
  });
}
