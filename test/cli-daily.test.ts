// The commands people reach for every day, run as a user runs them (child process, real control
// plane): `status`, `whoami`, `drift evaluate|config`, `labels push` + `performance`, `datasets pull`.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execFile, spawn } from 'node:child_process';
import { waitFor } from '../agent/testing/harness.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

const CLI = path.join(import.meta.dirname, '..', 'bin', 'flotilla.js');
const FACTS = { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' };

describe('flotilla daily commands', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  let viewerEnv: Record<string, string>;
  before(async () => {
    cp = await startControlPlane();
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-cli-daily-'));
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    // Two devices: one approved (offline, never connected), one pending approval.
    for (const autoApprove of [true, false]) {
      const t = await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'lab' }, autoApprove } });
      const e = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: t.body.token, facts: FACTS } });
      assert.equal(e.status, 201, JSON.stringify(e.body));
    }
    const viewer = await cp.api('POST', '/api/v1/tokens', { json: { name: 'v', role: 'viewer' } });
    viewerEnv = { ...env, FLOTILLA_TOKEN: viewer.body.token };
  });
  after(async () => {
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('status: one screen with devices, updates, alerts, rollouts, jobs and keys', async () => {
    const r = await runCli(['status'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^devices\s+0 online, 1 offline, 1 pending/m);
    assert.match(r.stdout, /flotilla devices ls --status pending/);
    assert.match(r.stdout, /^updates\s+0 in flight, 0 failed/m);
    assert.match(r.stdout, /^drift\s+no open alerts/m);
    assert.match(r.stdout, /^rollouts\s+none running/m);
    assert.match(r.stdout, /^jobs\s+none running/m);
    assert.match(r.stdout, /^keys\s+no key list yet: run `flotilla keys init/m);
    assert.ok(r.stdout.trim().split('\n').length <= 24, 'fits one screen');
    const j = JSON.parse((await runCli(['status', '--json'], env)).stdout);
    assert.deepEqual(j.devices, { total: 2, online: 0, offline: 1, pending: 1, revoked: 0 });
    assert.deepEqual(j.updates, { inFlight: 0, failed: 0, topReasons: [], latestFailed: [] });
    assert.equal(j.alerts.open, 0);
    assert.deepEqual(j.rollouts, []);
    assert.equal(j.keylist, null);
  });

  test('keys rotate and renew name the flag to fix when the root key file cannot be read', async () => {
    for (const cmd of ['rotate', 'renew']) {
      const r = await runCli(['keys', cmd, '--root-key', path.join(dir, 'absent.key')], env);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /cannot read root key .*absent\.key: .*pass --root-key the file `flotilla keys init --root-key <file>` wrote/);
    }
  });

  test('status works with a viewer token (every part is readable by every role)', async () => {
    const r = await runCli(['status', '--json'], viewerEnv);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).devices.pending, 1);
  });

  test('whoami names the token and its role', async () => {
    const r = await runCli(['whoami', '--json'], viewerEnv);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).role, 'viewer');
  });

  test('drift evaluate runs the monitor; drift config reads and sets; drift <model> still answers', async () => {
    const ev = await runCli(['drift', 'evaluate'], env);
    assert.equal(ev.code, 0, ev.stderr);
    assert.match(ev.stdout, /nothing evaluated: .*flotilla models reference/);
    assert.deepEqual(JSON.parse((await runCli(['drift', 'evaluate', '--json'], env)).stdout), { evaluations: [] });
    const missing = await runCli(['drift', 'evaluate', '--model', 'nope@1'], env);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nope/);
    // drift config on a model that does not exist is the server's refusal, with the model named.
    const cfg = await runCli(['drift', 'config', 'nope'], env);
    assert.equal(cfg.code, 1);
    assert.match(cfg.stderr, /nope/);
    const notJson = path.join(dir, 'bad.json');
    await writeFile(notJson, '{oops');
    const bad = await runCli(['drift', 'config', 'nope', '--set', notJson], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--set .* is not JSON: e\.g\./);
    const report = await runCli(['drift', 'nope@1'], env);
    assert.equal(report.code, 1, 'the report command still takes a model argument');
    assert.match(report.stderr, /nope/);
  });

  test('labels push stores ground truth; a missing file is named with its error', async () => {
    const labels = path.join(dir, 'labels.jsonl');
    await writeFile(labels, '{"predictionId":"p1","label":"yes"}\n{"predictionId":"p2","label":"no"}\n');
    const r = await runCli(['labels', 'push', labels, '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { stored: 2, matched: 0 });
    const none = await runCli(['labels', 'push', path.join(dir, 'absent.jsonl')], env);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /cannot read .*absent\.jsonl \(ENOENT\)/);
  });

  test('datasets pull writes the stored file and refuses to overwrite', async () => {
    const csv = path.join(dir, 'ref.csv');
    await writeFile(csv, 'a,b\n1,2\n3,4\n');
    const push = await runCli(['datasets', 'push', csv, '--name', 'ref'], env);
    assert.equal(push.code, 0, push.stderr);
    const out = path.join(dir, 'pulled.csv');
    const pull = await runCli(['datasets', 'pull', 'ref@1', '-o', out], env);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(await readFile(out, 'utf8'), 'a,b\n1,2\n3,4\n');
    const again = await runCli(['datasets', 'pull', 'ref@1', '-o', out], env);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /exists: remove it or choose another with -o/);
    const noVersion = await runCli(['datasets', 'pull', 'ref'], env);
    assert.equal(noVersion.code, 2);
    assert.match(noVersion.stderr, /name@N .*flotilla datasets versions ref/);
  });

  test('tables show relative times and readable sizes; --json keeps ISO times and bytes', async () => {
    await runCli(['enroll-tokens', 'create', '--ttl', '24h'], env);
    const ls = await runCli(['enroll-tokens', 'ls'], env);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /in (1 d|23 h 59 min)/);
    const tokens = JSON.parse((await runCli(['--json', 'enroll-tokens', 'ls'], env)).stdout).tokens;
    assert.ok(tokens.some((t: { expiresAt: string | null }) => t.expiresAt && /^\d{4}-\d\d-\d\dT/.test(t.expiresAt)));
    const devices = await runCli(['devices', 'ls'], env);
    assert.doesNotMatch(devices.stdout, /\d{4}-\d\d-\d\dT/, 'no ISO times in the table');
  });

  test('devices ls --watch refreshes until Ctrl-C (exit 0); with --json one object per refresh', async () => {
    for (const json of [false, true]) {
      const child = spawn(process.execPath, [CLI, 'devices', 'ls', '--watch', '--interval', '1s', ...(json ? ['--json'] : [])], { env: { PATH: process.env.PATH ?? '', ...env } });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d));
      const frames = () => (json ? out.split('\n').filter(Boolean).length : (out.match(/^--- /gm) ?? []).length);
      await waitFor(() => frames() >= 2, 'two refreshes', 30_000);
      const code = new Promise<number | null>((resolve) => child.once('exit', resolve));
      child.kill('SIGINT');
      assert.equal(await code, 0);
      if (json) for (const line of out.split('\n').filter(Boolean)) assert.equal(JSON.parse(line).devices.length, 2);
      else assert.match(out, /^ID\s+NAME\s+STATUS/m);
    }
  });

  test('an upload shows progress on a terminal only: never when piped or with --json', async () => {
    const model = path.join(dir, 'model.onnx');
    await writeFile(model, gemmModel());
    // Under `script` the CLI's stdout and stderr are a pseudo-terminal.
    const inTty = (args: string) =>
      new Promise<string>((resolve, reject) =>
        execFile('script', ['-qec', `"${process.execPath}" "${CLI}" ${args}`, '/dev/null'], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 60_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
      );
    const tty = await inTty(`models push "${model}" --name progress`);
    assert.match(tty, /uploading model\.onnx 100 % \(/);
    assert.match(tty, /pushed progress@1/);
    const ttyJson = await inTty(`models push "${model}" --name progress --json`);
    assert.doesNotMatch(ttyJson, /uploading/);
    const piped = await runCli(['models', 'push', model, '--name', 'progress'], env);
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stderr, '');
    assert.match(piped.stdout, /^pushed progress@3/);
  });
});
