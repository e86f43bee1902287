// The flotilla-agent command line as users run it: bad flags and variables fail at start with one
// line naming them (exit 2); a device that never enrolled needs --server and --enroll-token.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO } from '../agent/testing/harness.ts';

function run(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [path.join(REPO, 'bin', 'flotilla-agent.js'), ...args], { cwd: REPO, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: r.stdout + r.stderr };
}

describe('flotilla-agent CLI', () => {
  let dir: string;
  before(async () => (dir = await mkdtemp(path.join(tmpdir(), 'flotilla-agent-cli-'))));
  after(() => rm(dir, { recursive: true, force: true }));

  test('--help lists the options and their environment variables', () => {
    const r = run(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.out, /--enroll-token <value>/);
    assert.match(r.out, /FLOTILLA_AGENT_DATA_DIR/);
  });

  test('bad values name the flag or the variable, exit 2', () => {
    const flag = run(['--api-port', '99999', '--data-dir', dir]);
    assert.equal(flag.code, 2);
    assert.match(flag.out, /invalid --api-port/);
    const env = run(['--data-dir', dir], { FLOTILLA_AGENT_SERVER: 'nope' });
    assert.equal(env.code, 2);
    assert.match(env.out, /invalid FLOTILLA_AGENT_SERVER/);
  });

  test('not enrolled and no token: one clear line, exit 2', () => {
    const r = run(['--data-dir', dir, '--api-port', '0', '--log-level', 'fatal']);
    assert.equal(r.code, 2);
    assert.match(r.out, /not enrolled yet: pass --server and --enroll-token/);
  });
});
