// Every refusal of the CLI, as a user meets it (the compiled CLI as a child process, a real control
// plane): missing arguments, unknown ids, bad files, the server down, 4xx answers, a token whose role
// does not allow the command. Each ends on one line naming what is wrong and what to do, a non-zero
// exit code (2 usage or a local problem, 1 the server refused or could not be reached), no stack trace.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cliJson, runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

type Who = 'admin' | 'viewer' | 'bad-token' | 'down' | 'not-plane' | 'unconfigured';
interface Case {
  name: string;
  args: string[];
  who?: Who;
  /** The whole of stderr, one line ($DIR is the test's temp folder). */
  line: string | RegExp;
  code: 1 | 2;
}

const CASES: Case[] = [
  { name: 'missing argument', args: ['devices', 'show'], code: 2, line: "flotilla: missing required argument 'id': see `flotilla devices show --help`" },
  { name: 'missing required option', args: ['models', 'push'], code: 2, line: "flotilla: required option '--name <model>' not specified: see `flotilla models push --help`" },
  { name: 'unknown command', args: ['modles', 'ls'], code: 2, line: "flotilla: unknown command 'modles' (did you mean models?): see `flotilla --help`" },
  { name: 'unknown subcommand', args: ['models', 'lst'], code: 2, line: "flotilla: unknown command 'lst' (did you mean ls?): see `flotilla models --help`" },
  { name: 'unknown option', args: ['devices', 'ls', '--bogus'], code: 2, line: "flotilla: unknown option '--bogus': see `flotilla devices ls --help`" },
  { name: 'option without its value', args: ['devices', 'ls', '--status'], code: 2, line: "flotilla: option '--status <status>' argument missing: see `flotilla devices ls --help`" },
  { name: 'no server configured', args: ['devices', 'ls'], who: 'unconfigured', code: 2, line: "flotilla: no server configured: set FLOTILLA_URL or run `flotilla login --url <url> --token <token>`" },
  { name: 'server down', args: ['devices', 'ls'], who: 'down', code: 1, line: "flotilla: cannot reach the server at $DOWN (ECONNREFUSED): is it running? check FLOTILLA_URL or `flotilla login --url <url>`" },
  { name: 'server down --json', args: ['--json', 'devices', 'ls'], who: 'down', code: 1, line: "{\"error\":{\"code\":\"unreachable\",\"message\":\"cannot reach the server at $DOWN (ECONNREFUSED): is it running? check FLOTILLA_URL or `flotilla login --url <url>`\",\"details\":{\"cause\":\"ECONNREFUSED\",\"url\":\"$DOWN\"}}}" },
  { name: 'not the control plane', args: ['devices', 'ls'], who: 'not-plane', code: 1, line: "flotilla: server answered 404 with a non-JSON body; is FLOTILLA_URL the control plane?" },
  { name: 'wrong token', args: ['devices', 'ls'], who: 'bad-token', code: 1, line: "flotilla: token not recognised: create a new one with `flotilla tokens create` [unauthorized]; check FLOTILLA_TOKEN or run `flotilla login --url <url> --token <token>`" },
  { name: 'viewer creates a token', args: ['tokens', 'create', '--name', 'x', '--role', 'viewer'], who: 'viewer', code: 1, line: "flotilla: role \"viewer\" may not do this (needs admin) [forbidden]; ask an admin for a token with a role that allows it (`flotilla tokens create --role ...`)" },
  { name: 'viewer pushes a model', args: ['models', 'push', '$DIR/model.onnx', '--name', 'tab'], who: 'viewer', code: 1, line: "flotilla: role \"viewer\" may not do this (needs models:write) [forbidden]; ask an admin for a token with a role that allows it (`flotilla tokens create --role ...`)" },
  { name: 'viewer approves a device', args: ['devices', 'approve', 'dev_nope'], who: 'viewer', code: 1, line: "flotilla: role \"viewer\" may not do this (needs devices:write) [forbidden]; ask an admin for a token with a role that allows it (`flotilla tokens create --role ...`)" },
  { name: 'unknown device', args: ['devices', 'show', 'dev_nope'], code: 1, line: "flotilla: device \"dev_nope\" not found [not_found]; list devices with `flotilla devices ls`" },
  { name: 'unknown device approve', args: ['devices', 'approve', 'dev_nope'], code: 1, line: "flotilla: device \"dev_nope\" not found [not_found]; list devices with `flotilla devices ls`" },
  { name: 'unknown model version', args: ['models', 'show', 'tab@9'], code: 1, line: "flotilla: model version \"tab@9\" not found [not_found]; list its versions with `flotilla models versions tab`" },
  { name: 'model without version', args: ['drift', 'tab'], code: 1, line: "flotilla: tab@1 has no reference profile, so there is nothing to compare with: add one from a file with `flotilla models reference tab@1 <reference.csv|.jsonl>` or from a pushed dataset with `flotilla models reference tab@1 --dataset <name@N>` (POST /api/v1/models/tab/versions/1/reference with the rows, or with {\"dataset\": \"<name@N>\"}) [conflict]" },
  { name: 'bad model ref', args: ['models', 'show', 'tab@x'], code: 1, line: "flotilla: model version \"tab@x\" not found [not_found]; list its versions with `flotilla models versions tab`" },
  { name: 'unknown model', args: ['models', 'versions', 'nope'], code: 1, line: "flotilla: model \"nope\" not found [not_found]; list models with `flotilla models ls`" },
  { name: 'unknown bundle', args: ['deploy', 'bnd_nope', '--cohort', 'lab'], code: 1, line: "flotilla: bundle \"bnd_nope\" not found [not_found]; list bundles with `flotilla bundles ls`" },
  { name: 'deploy without target', args: ['deploy', 'tab@1'], code: 2, line: "flotilla: give exactly one of --device or --cohort" },
  { name: 'unknown cohort', args: ['cohorts', 'show', 'nope'], code: 1, line: "flotilla: cohort \"nope\" not found [not_found]; list cohorts with `flotilla cohorts ls`" },
  { name: 'bad selector', args: ['cohorts', 'create', 'x', '--selector', '!!!'], code: 1, line: "flotilla: invalid selector at position 1: expected a label key after \"!\" (in \"!!!\") [invalid_request]" },
  { name: 'unknown rollout', args: ['rollouts', 'show', 'rol_nope'], code: 1, line: "flotilla: rollout \"rol_nope\" not found [not_found]; list rollouts with `flotilla rollouts ls`" },
  { name: 'unknown rollout abort', args: ['rollouts', 'abort', 'rol_nope'], code: 1, line: "flotilla: rollout \"rol_nope\" not found [not_found]; list rollouts with `flotilla rollouts ls`" },
  { name: 'rollout bad bake', args: ['rollouts', 'start', 'tab@1', '--cohort', 'lab', '--bake', '1x'], code: 2, line: "flotilla: invalid duration \"1x\": use e.g. 90s, 30m, 24h, 7d" },
  { name: 'rollout bad stages', args: ['rollouts', 'start', 'tab@1', '--cohort', 'lab', '--stages', '2,x'], code: 2, line: "flotilla: invalid --stages \"2,x\": e.g. 0.1,0.5,1 or 10%,100%" },
  { name: 'unknown job', args: ['jobs', 'show', 'job_nope'], code: 1, line: "flotilla: job \"job_nope\" not found [not_found]; list jobs with `flotilla jobs ls`" },
  { name: 'unknown job logs', args: ['jobs', 'logs', 'job_nope'], code: 1, line: "flotilla: job \"job_nope\" not found [not_found]; list jobs with `flotilla jobs ls`" },
  { name: 'unknown deployment', args: ['deployments', 'show', 'dep_nope'], code: 1, line: "flotilla: deployment \"dep_nope\" not found [not_found]; list deployments with `flotilla deployments ls`" },
  { name: 'unknown token revoke', args: ['tokens', 'revoke', 'tok_nope'], code: 1, line: "flotilla: active token tok_nope not found [not_found]; list tokens with `flotilla tokens ls`" },
  { name: 'bad role', args: ['tokens', 'create', '--name', 'x', '--role', 'boss'], code: 2, line: "flotilla: unknown role \"boss\": use admin, ml-engineer, operator, viewer" },
  { name: 'missing model file', args: ['models', 'push', '$DIR/absent.onnx', '--name', 'x'], code: 2, line: "flotilla: no such file: $DIR/absent.onnx: give the path of an .onnx file, its export folder, or a .tar of that folder" },
  { name: 'not an onnx model', args: ['models', 'push', '$DIR/not-a-model.onnx', '--name', 'x'], code: 1, line: "flotilla: not a valid ONNX protobuf (unsupported wire type 4 (field 13)); the file may be truncated or not an ONNX model [invalid_model]" },
  { name: 'missing dataset file', args: ['datasets', 'push', '$DIR/absent.csv', '--name', 'd'], code: 2, line: "flotilla: no such file or directory: $DIR/absent.csv: give a .csv, .jsonl, .json, .tar, .npy or .npz file, or an image folder" },
  { name: 'empty dataset', args: ['datasets', 'push', '$DIR/empty.csv', '--name', 'd'], code: 1, line: "flotilla: the dataset is empty: give a header line and at least one row [invalid_request]" },
  { name: 'unknown dataset', args: ['datasets', 'show', 'nope@1'], code: 1, line: "flotilla: dataset \"nope\" not found [not_found]; list datasets with `flotilla datasets ls`" },
  { name: 'missing labels file', args: ['labels', 'push', '$DIR/absent.jsonl'], code: 2, line: "flotilla: cannot read $DIR/absent.jsonl (ENOENT): labels push takes a .json array or a .jsonl file" },
  { name: 'policy not JSON', args: ['retrain', 'tab', '--policy', '$DIR/bad.json'], code: 2, line: "flotilla: $DIR/bad.json is not JSON: --policy takes a JSON file ({cron?, trainer, data, ...}; README, \"Continuous training\")" },
  { name: 'policy missing', args: ['retrain', 'tab', '--policy', '$DIR/absent.json'], code: 2, line: "flotilla: cannot read $DIR/absent.json (ENOENT): --policy takes a JSON file ({cron?, trainer, data, ...}; README, \"Continuous training\")" },
  { name: 'telemetry bad target', args: ['telemetry', 'nope'], code: 1, line: "flotilla: cohort \"nope\" not found [not_found]; list cohorts with `flotilla cohorts ls`" },
  { name: 'telemetry bad window', args: ['telemetry', 'dev_x', '--window', 'forever'], code: 1, line: "flotilla: invalid query: window: a duration such as 90s, 15m, 1h or 7d, at most 366d [invalid_request]" },
  { name: 'drift bad window', args: ['drift', 'tab@1', '--window', 'forever'], code: 1, line: "flotilla: invalid query: window: a duration such as 90s, 15m, 1h or 7d, at most 366d [invalid_request]" },
  { name: 'completion unknown shell', args: ['completion', 'powershell'], code: 2, line: "flotilla: unknown shell \"powershell\": use bash, zsh or fish" },
  { name: 'bundle def missing', args: ['bundles', 'build', 'tab@1', '--def', '$DIR/absent'], code: 2, line: "flotilla: no such definition: $DIR/absent: give --def a bundle definition folder or its bundle.json (e.g. firmware-bundles/tabular-demo)" },
  { name: 'unknown bundle show', args: ['bundles', 'show', 'bnd_nope'], code: 1, line: "flotilla: bundle \"bnd_nope\" not found [not_found]; list bundles with `flotilla bundles ls`" },
  { name: 'settings bad value', args: ['settings', 'set', '--cohort', 'lab', '--capture', 'maybe'], code: 2, line: "flotilla: --capture takes on or off, got \"maybe\"" },
  { name: 'webhooks bad url', args: ['webhooks', 'add', 'not-a-url', '--events', 'rollout.paused'], code: 1, line: "flotilla: invalid webhook URL \"not-a-url\": give an absolute http:// or https:// URL [invalid_request]" },
  { name: 'unknown webhook', args: ['webhooks', 'show', 'whk_nope'], code: 1, line: "flotilla: webhook \"whk_nope\" not found [not_found]; list webhooks with `flotilla webhooks ls`" },
  { name: 'keys init no root', args: ['keys', 'init'], code: 2, line: "flotilla: required option '--root-key <file>' not specified: see `flotilla keys init --help`" },
  { name: 'keys rotate absent root', args: ['keys', 'rotate', '--root-key', '$DIR/absent.key'], code: 2, line: "flotilla: cannot read root key $DIR/absent.key: ENOENT: no such file or directory, stat '$DIR/absent.key': pass --root-key the file `flotilla keys init --root-key <file>` wrote" },
  { name: 'audit bad limit', args: ['audit', '--limit', 'lots'], code: 2, line: "flotilla: option '--limit <n>' argument 'lots' is invalid. expected a whole number, e.g. 50: see `flotilla audit --help`" },
  { name: 'events bad since', args: ['events', '--since', 'yesterday-ish'], code: 2, line: "flotilla: invalid --since \"yesterday-ish\": an event id (a whole number)" },
  { name: 'optimize bad quantize', args: ['optimize', 'tab@1', '--quantize', 'int3'], code: 2, line: "flotilla: --quantize supports int8, got \"int3\"" },
  { name: 'performance unknown', args: ['performance', 'nope@1'], code: 1, line: "flotilla: model \"nope\" not found [not_found]; list models with `flotilla models ls`" },
  { name: 'models run missing input', args: ['models', 'run', 'tab@1'], code: 2, line: "flotilla: required option '--inputs <json|@file>' not specified: see `flotilla models run --help`" },
  { name: 'models run inputs not JSON', args: ['models', 'run', 'tab@1', '--inputs', '{oops'], code: 2, line: "flotilla: --inputs must be JSON like {\"x\":{\"dims\":[1,4],\"data\":[0.1,0.2,0.3,0.4]}} (or @file.json)" },
  { name: 'models run inputs file missing', args: ['models', 'run', 'tab@1', '--inputs', '@$DIR/absent.json'], code: 2, line: "flotilla: cannot read --inputs $DIR/absent.json (ENOENT)" },
  { name: 'login missing url', args: ['login', '--token', 'x'], who: 'unconfigured', code: 2, line: "flotilla: required option '--url <url>' not specified: see `flotilla login --help`" },
  { name: 'devices label bad pair', args: ['devices', 'label', 'dev_nope', 'foo'], code: 2, line: "flotilla: invalid label \"foo\": expected key=value" },
  { name: 'alias bad version', args: ['models', 'alias', 'tab', 'champion', 'x'], code: 2, line: "flotilla: version must be a positive integer, got \"x\"" },
  { name: 'enroll-tokens bad ttl', args: ['enroll-tokens', 'create', '--ttl', 'soon'], code: 2, line: "flotilla: invalid duration \"soon\": use e.g. 90s, 30m, 24h, 7d" },
];

describe('CLI refusals: one line, what to fix, non-zero exit', () => {
  let cp: TestPlane;
  let dir: string;
  let other: Server;
  let downUrl: string;
  const envs = {} as Record<Who, Record<string, string>>;
  before(async () => {
    cp = await startControlPlane({ driftCron: 'off' });
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-cli-errors-'));
    // Something on HTTP that is not the control plane (a web server answering HTML).
    other = createServer((_req, res) => res.writeHead(404, { 'content-type': 'text/html' }).end('<html>not found</html>'));
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const base = { FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    envs.admin = { ...base, FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken };
    const viewer = await cp.api('POST', '/api/v1/tokens', { json: { name: 'v', role: 'viewer' } });
    envs.viewer = { ...envs.admin, FLOTILLA_TOKEN: viewer.body.token };
    envs['bad-token'] = { ...envs.admin, FLOTILLA_TOKEN: 'flt_not_a_token' };
    // A port nothing listens on: taken, then let go.
    const free = createServer();
    await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
    downUrl = `http://127.0.0.1:${(free.address() as AddressInfo).port}`;
    await new Promise((r) => free.close(r));
    envs.down = { ...envs.admin, FLOTILLA_URL: downUrl };
    envs['not-plane'] = { ...envs.admin, FLOTILLA_URL: `http://127.0.0.1:${(other.address() as AddressInfo).port}` };
    envs.unconfigured = base;
    await writeFile(path.join(dir, 'model.onnx'), gemmModel());
    await cliJson(envs.admin, 'models', 'push', path.join(dir, 'model.onnx'), '--name', 'tab');
    await writeFile(path.join(dir, 'bad.json'), '{oops');
    await writeFile(path.join(dir, 'not-a-model.onnx'), 'hello');
    await writeFile(path.join(dir, 'empty.csv'), '');
  });
  after(async () => {
    await cp?.stop();
    await new Promise((r) => other?.close(r));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('every case', async () => {
    const run = async (c: Case): Promise<string | null> => {
      const args = c.args.map((a) => a.replaceAll('$DIR', dir));
      const r = await runCli(args, envs[c.who ?? 'admin']);
      const got = r.stderr.replaceAll(dir, '$DIR').replaceAll(downUrl, '$DOWN');
      if (process.env.PRINT) console.log(JSON.stringify({ name: c.name, args: c.args, who: c.who, code: r.code, stderr: got, stdout: r.stdout.slice(0, 200) }));
      const line = got.replace(/\n$/, '');
      const okLine = typeof c.line === 'string' ? line === c.line : c.line.test(line);
      return !okLine || r.code !== c.code || line.includes('\n') || /\n\s+at /.test(got) ? `${c.name} (flotilla ${c.args.join(' ')}): exit ${r.code}, stderr ${JSON.stringify(got)}; want exit ${c.code}, ${c.line}` : null;
    };
    // Every case is a refusal (nothing changes on the plane), so they run four at a time.
    const failures: string[] = [];
    for (let i = 0; i < CASES.length; i += 4) failures.push(...(await Promise.all(CASES.slice(i, i + 4).map(run))).filter((f): f is string => f !== null));
    assert.deepEqual(failures, []);
  });
});
