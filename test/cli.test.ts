// The `flotilla` CLI as a user runs it: a child process talking to a real control plane.
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

describe('flotilla CLI', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  before(async () => {
    cp = await startControlPlane();
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-cli-'));
    await writeFile(path.join(dir, 'model.onnx'), gemmModel());
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
  });
  after(async () => {
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('models push / ls / show / alias with tables and --json', async () => {
    const push = await runCli(['models', 'push', path.join(dir, 'model.onnx'), '--name', 'churn', '--metric', 'accuracy=0.93', '--notes', 'first'], env);
    assert.equal(push.code, 0, push.stderr);
    assert.match(push.stdout, /pushed churn@1/);
    const push2 = await runCli(['--json', 'models', 'push', path.join(dir, 'model.onnx'), '--name', 'churn', '--parent', 'churn@1'], env);
    assert.equal(JSON.parse(push2.stdout).ref, 'churn@2');
    const ls = await runCli(['models', 'ls'], env);
    assert.match(ls.stdout, /^NAME\s+VERSIONS\s+LATEST/m);
    assert.match(ls.stdout, /^churn\s+2\s+2/m);
    const alias = await runCli(['models', 'alias', 'churn', 'champion', '1'], env);
    assert.match(alias.stdout, /churn@champion -> churn@1/);
    const show = await runCli(['--json', 'models', 'show', 'churn@champion'], env);
    const v = JSON.parse(show.stdout);
    assert.equal(v.version, 1);
    assert.deepEqual(v.children, ['churn@2']);
    assert.deepEqual(v.metrics, { accuracy: 0.93 });
  });

  test('fleet commands: enroll-tokens, cohorts, devices, tokens, audit', async () => {
    const tok = await runCli(['--json', 'enroll-tokens', 'create', '--labels', 'site=berlin,hw=rpi4', '--ttl', '24h', '--max-uses', '2'], env);
    assert.equal(tok.code, 0, tok.stderr);
    const created = JSON.parse(tok.stdout);
    assert.deepEqual(created.labels, { site: 'berlin', hw: 'rpi4' });
    assert.equal(created.maxUses, 2);
    const enrolled = await cp.api('POST', '/api/v1/enroll', {
      token: null,
      json: { token: created.token, facts: { arch: 'x64', cpus: 2, memoryBytes: 1e9, os: 'linux', agentVersion: '0.1.0' } },
    });
    const id = enrolled.body.deviceId;
    const cohort = await runCli(['cohorts', 'create', 'berlin', '--selector', 'site=berlin,hw in (rpi4,jetson),!quarantine'], env);
    assert.equal(cohort.code, 0, cohort.stderr);
    const show = await runCli(['cohorts', 'show', 'berlin'], env);
    assert.match(show.stdout, /members: 1/);
    assert.ok(show.stdout.includes(id));
    const label = await runCli(['devices', 'label', id, 'quarantine=yes'], env);
    assert.match(label.stdout, /quarantine=yes/);
    assert.match((await runCli(['cohorts', 'show', 'berlin'], env)).stdout, /members: 0/);
    const ls = await runCli(['--json', 'devices', 'ls', '--selector', 'quarantine'], env);
    assert.deepEqual(JSON.parse(ls.stdout).devices.map((d: { id: string }) => d.id), [id]);
    const viewer = JSON.parse((await runCli(['--json', 'tokens', 'create', '--role', 'viewer', '--name', 'dash'], env)).stdout);
    assert.equal(viewer.role, 'viewer');
    const denied = await runCli(['devices', 'revoke', id], { ...env, FLOTILLA_TOKEN: viewer.token });
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /^flotilla: role "viewer" may not/);
    const revoke = await runCli(['devices', 'revoke', id], env);
    assert.match(revoke.stdout, /revoked/);
    const audit = await runCli(['audit', '--action', 'device.revoke'], env);
    assert.ok(audit.stdout.includes(id));
  });

  test('errors are one line on stderr with a non-zero exit', async () => {
    const missing = await runCli(['models', 'push', path.join(dir, 'nope.onnx'), '--name', 'x'], env);
    assert.equal(missing.code, 2);
    assert.equal(missing.stderr.trim().split('\n').length, 1);
    assert.match(missing.stderr, /no such file/);
    await writeFile(path.join(dir, 'bad.onnx'), 'not a model');
    const bad = await runCli(['models', 'push', path.join(dir, 'bad.onnx'), '--name', 'x'], env);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^flotilla: not a valid ONNX protobuf.*\[invalid_model\]\n$/);
    const badSel = await runCli(['cohorts', 'create', 'c', '--selector', 'hw in (a'], env);
    assert.equal(badSel.code, 1);
    assert.match(badSel.stderr, /invalid selector/);
    const noServer = await runCli(['models', 'ls'], { FLOTILLA_CONFIG_DIR: path.join(dir, 'empty') });
    assert.equal(noServer.code, 2);
    assert.match(noServer.stderr, /FLOTILLA_URL/);
    const wrongToken = await runCli(['models', 'ls'], { ...env, FLOTILLA_TOKEN: 'flt_nope' });
    assert.equal(wrongToken.code, 1);
    assert.match(wrongToken.stderr, /token not recognised/);
    const usage = await runCli(['models', 'alias', 'churn'], env);
    assert.equal(usage.code, 2);
  });

  test('login stores credentials (0600) that later commands use', async () => {
    const cfg = path.join(dir, 'login-cfg');
    const login = await runCli(['login', '--url', cp.url, '--token', cp.adminToken], { FLOTILLA_CONFIG_DIR: cfg });
    assert.equal(login.code, 0, login.stderr);
    assert.equal((await stat(path.join(cfg, 'login.json'))).mode & 0o777, 0o600);
    const ls = await runCli(['--json', 'models', 'ls'], { FLOTILLA_CONFIG_DIR: cfg });
    assert.equal(ls.code, 0, ls.stderr);
    assert.ok(JSON.parse(ls.stdout).models.length >= 1);
    const bad = await runCli(['login', '--url', cp.url, '--token', 'flt_bad'], { FLOTILLA_CONFIG_DIR: path.join(dir, 'x') });
    assert.equal(bad.code, 1);
  });
});
