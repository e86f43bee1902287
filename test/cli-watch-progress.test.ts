// `rollouts show --watch` and the progress of bundle build and optimize, run as a user runs them
// (child processes, a real control plane). A terminal is a pseudo-TTY made by util-linux `script`.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../agent/testing/harness.ts';
import { cliJson, runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

const CLI = path.join(import.meta.dirname, '..', 'bin', 'flotilla.js');
const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');

describe('flotilla watch and progress', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  /** The CLI with its stdout and stderr on a pseudo-terminal; resolves with what the terminal showed. */
  const inTty = (args: string) =>
    new Promise<string>((resolve, reject) =>
      execFile('script', ['-qec', `"${process.execPath}" "${CLI}" ${args}`, '/dev/null'], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 120_000 }, (err, stdout) => (err ? reject(new Error(`${err.message}\n${stdout}`)) : resolve(stdout))),
    );

  before(async () => {
    cp = await startControlPlane({ driftCron: 'off' });
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-watch-'));
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    await cliJson(env, 'keys', 'init', '--root-key', path.join(dir, 'root.key'));
    await writeFile(path.join(dir, 'model.onnx'), gemmModel({ seed: 3 }));
    await cliJson(env, 'models', 'push', path.join(dir, 'model.onnx'), '--name', 'tab');
    await cliJson(env, 'cohorts', 'create', 'lab', '--selector', 'site=lab');
    // Two approved devices in the cohort (enrolled over the API; they never connect, so a stage never completes).
    for (let i = 0; i < 2; i++) {
      const t = await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'lab' }, autoApprove: true } });
      const e = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: t.body.token, facts: { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' } } });
      assert.equal(e.status, 201, JSON.stringify(e.body));
    }
  });
  after(async () => {
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('bundles build and optimize show progress on a terminal only: never with --json or piped', async () => {
    const build = await inTty(`bundles build tab@1 --def "${BUNDLE_DEF}"`);
    assert.match(build, /building the bundle of tab@1 \(smoke vectors\) \d+ s/);
    const buildJson = await inTty(`bundles build tab@1 --def "${BUNDLE_DEF}" --json`);
    assert.doesNotMatch(buildJson, /building the bundle/);
    assert.ok(JSON.parse(buildJson.slice(buildJson.indexOf('{'))).id, 'only the JSON result');
    const piped = await runCli(['bundles', 'build', 'tab@1', '--def', BUNDLE_DEF], env);
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stderr, '', 'nothing on a piped stderr');

    const opt = await inTty('optimize tab@1 --quantize int8');
    assert.match(opt, /optimizing tab@1 \d+ s/);
    const optJson = await inTty('optimize tab@1 --quantize int8 --json');
    assert.doesNotMatch(optJson, /optimizing/);
    const optPiped = await runCli(['optimize', 'tab@1', '--quantize', 'int8'], env);
    assert.equal(optPiped.code, 0, optPiped.stderr);
    assert.equal(optPiped.stderr, '');
  });

  test('rollouts show --watch: redraws in place on a terminal, appends when piped, ends by itself when the rollout ends', async () => {
    const bundle = (await cliJson(env, 'bundles', 'build', 'tab@1', '--def', BUNDLE_DEF)).id;
    // A long bake keeps the rollout running until it is aborted.
    const rollout = (await cliJson(env, 'rollouts', 'start', bundle, '--cohort', 'lab', '--stages', '0.5,1', '--bake', '1h')).id as string;

    const child = spawn(process.execPath, [CLI, 'rollouts', 'show', rollout, '--watch', '--interval', '1s'], { env: { PATH: process.env.PATH ?? '', ...env } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    await waitFor(() => (out.match(/^--- /gm) ?? []).length >= 2, 'two refreshes appended', 30_000);
    assert.match(out, new RegExp(`^id\\s+${rollout}$`, 'm'));
    assert.match(out, /^status\s+running$/m);
    assert.doesNotMatch(out, /\x1b\[2J/, 'piped: no screen clearing');

    // On a terminal the screen is cleared and redrawn; the bound (`timeout`) ends that one.
    const tty = await new Promise<string>((resolve) =>
      execFile('script', ['-qec', `timeout -s INT 4 "${process.execPath}" "${CLI}" rollouts show ${rollout} --watch --interval 1s`, '/dev/null'], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 60_000 }, (_err, stdout) => resolve(stdout)),
    );
    assert.match(tty, /\x1b\[H\x1b\[2J/);
    assert.match(tty, /refreshing every 1 s — Ctrl-C to stop/);
    assert.doesNotMatch(tty, /^--- /m);

    // flotilla status on this fleet: two approved devices that never connected, the rollout running.
    const st = await runCli(['status'], env);
    assert.equal(st.code, 0, st.stderr);
    const lines = st.stdout.trimEnd().split('\n');
    assert.equal(lines[0], 'devices   0 online, 2 offline, 0 pending');
    assert.match(lines[1], /^updates   \d+ in flight, 0 failed$/);
    assert.deepEqual(lines.slice(2, 5), ['drift     no open alerts', `rollouts  ${rollout} tab@1 → lab running stage 1/2`, 'jobs      none running']);
    assert.match(lines[5], /^keys      key list v1 expires in (365 d|364 d 23 h)$/);

    const abort = await runCli(['rollouts', 'abort', rollout], env);
    assert.equal(abort.code, 0, abort.stderr);
    assert.equal(await exited, 0, 'the watch ended by itself with the rollout');
    assert.match(out.slice(out.lastIndexOf('--- ')), /^status\s+aborted$/m, 'the last frame shows the end');
  });
});
