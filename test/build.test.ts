// What ships is compiled JavaScript: `npm test` builds first (pretest), the bin launchers run the
// bundles in dist/ (no TypeScript loader in the process or its worker threads), and FLOTILLA_DEV=1
// still runs the source. The end-to-end suites (agent/testing/harness.ts, test/helpers/cli.ts) spawn
// the same launchers, so they exercise the compiled agent, its inference worker and the CLI.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import { AGENT_VERSION } from '../agent/version.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const run = promisify(execFile);
const node = (args: string[], env: Record<string, string> = {}) => run(process.execPath, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env }, timeout: 60_000 });

describe('compiled programs', () => {
  it('dist has one bundle per program with its worker entries, and none of it loads TypeScript', async () => {
    const expected: Record<string, string[]> = {
      agent: ['flotilla-agent.js', 'inference-worker.js'],
      cli: ['flotilla.js'],
      server: ['flotilla-server.js', 'train-worker.js', 'analysis-worker.js'],
    };
    for (const [program, entries] of Object.entries(expected)) {
      const files = await readdir(path.join(ROOT, 'dist', program));
      for (const e of entries) assert.ok(files.includes(e), `dist/${program}/${e} is built`);
      for (const f of files.filter((x) => x.endsWith('.js'))) {
        const code = await readFile(path.join(ROOT, 'dist', program, f), 'utf8');
        assert.doesNotMatch(code, /tsx\/esm|from ["'][^"']+\.ts["']|import\(["'][^"']+\.ts["']\)/, `dist/${program}/${f} neither registers tsx nor imports a .ts file`);
      }
    }
    assert.ok((await readdir(path.join(ROOT, 'dist', 'server', 'migrations'))).some((f) => f.endsWith('.sql')), 'the server bundle carries its migrations');
  });

  it('the compiled server (npm start) serves the built console at /, not the "run build:web" page', async (t) => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { spawn } = await import('node:child_process');
    const { freePort } = await import('../agent/testing/harness.ts');
    const dataDir = await mkdtemp(path.join(tmpdir(), 'flotilla-compiled-server-'));
    const [httpPort, mqttPort] = [await freePort(), await freePort()];
    const child = spawn(process.execPath, ['bin/flotilla-server.js'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', FLOTILLA_HTTP_PORT: String(httpPort), FLOTILLA_MQTT_PORT: String(mqttPort), FLOTILLA_DATA_DIR: dataDir, FLOTILLA_LOG_LEVEL: 'warn' },
      stdio: 'ignore',
    });
    t.after(async () => {
      child.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    });
    let res: Response | undefined;
    for (let i = 0; i < 300 && !res; i++) {
      res = await fetch(`http://127.0.0.1:${httpPort}/`).catch(() => undefined);
      if (!res) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(res, 'the compiled server answers');
    assert.equal(res.status, 200);
    assert.match(await res.text(), /<script[^>]+src="\/assets\//);
  });

  it('the bin launchers run the compiled agent and CLI', async () => {
    const agent = await node(['bin/flotilla-agent.js', '--version']);
    assert.equal(agent.stdout.trim(), AGENT_VERSION);
    const cli = await node(['bin/flotilla.js', '--help']);
    assert.match(cli.stdout, /^Usage: flotilla /);
    // The compiled CLI keeps the one-line error and non-zero exit for a bad command.
    const bad = await node(['bin/flotilla.js', 'no-such-command']).catch((err) => err);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown command 'no-such-command'/);
  });

  it('the compiled server worker entries run as plain JavaScript threads', async () => {
    // A job the trainer does not know: the compiled worker loads, runs the trainer code and answers.
    const worker = new Worker(new URL('../dist/server/train-worker.js', import.meta.url), { workerData: { job: { kind: 'nope' } } });
    try {
      const msg = await new Promise((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      assert.deepEqual(msg, { type: 'error', message: 'unknown trainer kind: nope' });
    } finally {
      await worker.terminate();
    }
  });

  it('FLOTILLA_DEV=1 runs the source through tsx', async () => {
    const agent = await node(['bin/flotilla-agent.js', '--version'], { FLOTILLA_DEV: '1' });
    assert.equal(agent.stdout.trim(), AGENT_VERSION);
  });
});
