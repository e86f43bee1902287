// `--json` covers errors too: every failure is one JSON object {error:{code,message,details}} on
// stderr (nothing on stdout), with the documented exit codes (1 refused/failed, 2 usage/local).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';

function jsonError(r: { stdout: string; stderr: string }) {
  assert.equal(r.stdout, '', 'nothing on stdout');
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got: ${r.stderr}`);
  const body = JSON.parse(lines[0]);
  assert.deepEqual(Object.keys(body), ['error']);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'details', 'message']);
  assert.equal(typeof body.error.code, 'string');
  assert.equal(typeof body.error.message, 'string');
  return body.error as { code: string; message: string; details: Record<string, unknown> };
}

describe('flotilla --json errors', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  before(async () => {
    cp = await startControlPlane();
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-cli-json-'));
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
  });
  after(async () => {
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('a server refusal carries the server code and details, exit 1', async () => {
    const r = await runCli(['devices', 'show', 'dev_nope', '--json'], env);
    assert.equal(r.code, 1);
    const e = jsonError(r);
    assert.equal(e.code, 'not_found');
    assert.match(e.message, /dev_nope/);
    assert.equal(e.details.status, 404);
  });

  test('a usage error (unknown option, missing argument) is JSON too, exit 2, no help text', async () => {
    const unknown = await runCli(['--json', 'devices', 'ls', '--bogus'], env);
    assert.equal(unknown.code, 2);
    assert.equal(jsonError(unknown).code, 'unknown_option');
    const missing = await runCli(['devices', 'show', '--json'], env);
    assert.equal(missing.code, 2);
    const e = jsonError(missing);
    assert.equal(e.code, 'missing_argument');
    assert.match(e.message, /id/);
  });

  test('a bad flag value names the flag, exit 2', async () => {
    const r = await runCli(['--json', 'enroll-tokens', 'create', '--ttl', 'soon'], env);
    assert.equal(r.code, 2);
    const e = jsonError(r);
    assert.equal(e.code, 'invalid_usage');
    assert.match(e.message, /"soon".*e\.g\. 90s/);
  });

  test('refusals name what to fix: the flag and the value, or what to give instead', async () => {
    const uses = await runCli(['enroll-tokens', 'create', '--max-uses', '0'], env);
    assert.equal(uses.code, 2);
    assert.match(uses.stderr, /--max-uses <n>.*'0'.*positive integer/);
    const usesJson = await runCli(['--json', 'enroll-tokens', 'create', '--max-uses', '0'], env);
    assert.equal(jsonError(usesJson).code, 'invalid_argument');
    const file = await runCli(['models', 'push', path.join(dir, 'absent.onnx'), '--name', 'm'], env);
    assert.equal(file.code, 2);
    assert.match(file.stderr, /no such file: .*absent\.onnx: give the path of an \.onnx file/);
    const def = await runCli(['bundles', 'build', 'm@1', '--def', path.join(dir, 'nodef')], env);
    assert.equal(def.code, 2);
    assert.match(def.stderr, /give --def a bundle definition folder/);
  });

  test('configuration and connection problems', async () => {
    const none = await runCli(['--json', 'models', 'ls'], { FLOTILLA_CONFIG_DIR: path.join(dir, 'none') });
    assert.equal(none.code, 2);
    const e1 = jsonError(none);
    assert.equal(e1.code, 'not_configured');
    assert.match(e1.message, /FLOTILLA_URL|flotilla login/);
    const badEnv = await runCli(['--json', 'models', 'ls'], { FLOTILLA_URL: 'not a url', FLOTILLA_CONFIG_DIR: path.join(dir, 'none') });
    assert.equal(badEnv.code, 2);
    assert.deepEqual(jsonError(badEnv).details, { variable: 'FLOTILLA_URL' });
    const down = await runCli(['--json', 'models', 'ls'], { FLOTILLA_URL: 'http://127.0.0.1:9', FLOTILLA_TOKEN: 'x', FLOTILLA_CONFIG_DIR: path.join(dir, 'none') });
    assert.equal(down.code, 1);
    assert.equal(jsonError(down).code, 'unreachable');
  });

  test('a wrong token says what to do next', async () => {
    const r = await runCli(['--json', 'models', 'ls'], { ...env, FLOTILLA_TOKEN: 'flt_wrong' });
    assert.equal(r.code, 1);
    const e = jsonError(r);
    assert.equal(e.details.status, 401);
    assert.match(e.message, /FLOTILLA_TOKEN|flotilla login/);
  });

  test('without --json, errors stay one human line', async () => {
    const r = await runCli(['devices', 'show', 'dev_nope'], env);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, "flotilla: device \"dev_nope\" not found [not_found]; list devices with `flotilla devices ls`\n");
  });
});
