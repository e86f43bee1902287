// A device's download under faults, everything real: a control plane, the CLI and a compiled agent
// process whose artifact URL (--artifact-url, a mirror) is a small proxy in front of the control plane
// that drops or refuses the requests the test asks it to. The agent retries failed downloads with
// backoff (resuming with Range) and waits a busy server's Retry-After out without spending a retry;
// a download that keeps failing still ends DOWNLOAD_FAILED, naming why.
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../agent/testing/harness.ts';
import { gemmModel } from './helpers/models.ts';
import { startPlaneWithAgent, type PlaneWithAgent } from './helpers/plane-with-agent.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');
const RETRIES = 3;

type Fault = 'reset' | 'busy' | 'pass';

/** Forwards to `target`; the artifact requests take the next fault of `plan` (then `otherwise`). */
class FaultProxy {
  target = '';
  plan: Fault[] = [];
  otherwise: Fault = 'pass';
  /** Every artifact request: when it arrived and what it got. */
  readonly seen: Array<{ at: number; fault: Fault }> = [];
  private readonly server = http.createServer((req, res) => {
    if (req.url?.startsWith('/artifacts/')) {
      const fault = this.plan.shift() ?? this.otherwise;
      this.seen.push({ at: performance.now(), fault });
      if (fault === 'reset') return void req.socket.destroy();
      if (fault === 'busy') return void res.writeHead(503, { 'retry-after': '1', 'content-type': 'application/json' }).end('{"error":{"code":"server_busy","message":"busy"}}');
    }
    const up = http.request(new URL(req.url!, this.target), { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode!, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  url = '';

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

describe('artifact downloads under faults (real control plane and agent)', { timeout: 120_000 }, () => {
  const proxy = new FaultProxy();
  let p: PlaneWithAgent;

  const device = async () => (await p.cp.api('GET', `/api/v1/devices/${p.deviceId}`)).body;
  const deploy = async (version: number) => {
    await writeFile(path.join(p.dir, `v${version}.onnx`), gemmModel({ seed: version }));
    await p.cli('models', 'push', path.join(p.dir, `v${version}.onnx`), '--name', 'faulty');
    await p.cli('bundles', 'build', `faulty@${version}`, '--def', BUNDLE_DEF);
    await p.cli('deploy', `faulty@${version}`, '--device', p.deviceId);
  };
  const activeOn = (version: number) =>
    waitFor(async () => {
      const d = await device();
      return d.updateState === 'active' && d.reported?.active?.model?.version === version;
    }, `active on v${version}`, 60_000, 100);

  before(async () => {
    await proxy.start();
    p = await startPlaneWithAgent({ site: 'faults', prefix: 'flotilla-dl-faults-', agentArgs: ['--artifact-url', proxy.url, '--download-retries', String(RETRIES)] });
    proxy.target = p.cp.url;
  });
  after(async () => {
    await p?.stop();
    await proxy.stop();
  });

  test(`a download that fails ${RETRIES} times, then succeeds, activates`, async () => {
    proxy.plan = Array(RETRIES).fill('reset');
    await deploy(1);
    await activeOn(1);
    const faults = proxy.seen.map((s) => s.fault);
    assert.deepEqual(faults.slice(0, RETRIES + 1), [...Array(RETRIES).fill('reset'), 'pass'], 'the same file was asked for again after each drop');
  });

  test('503 + Retry-After is waited out, and does not spend the retries', async () => {
    proxy.seen.length = 0;
    // More busy answers than the agent has retries: were they counted, the update would fail.
    proxy.plan = Array(RETRIES + 1).fill('busy');
    await deploy(2);
    await activeOn(2);
    const busy = proxy.seen.filter((s) => s.fault === 'busy');
    assert.equal(busy.length, RETRIES + 1);
    for (let i = 1; i < proxy.seen.length; i++) {
      if (proxy.seen[i - 1].fault !== 'busy') continue;
      // Retry-After: 1 is a floor (the agent adds jitter on top of it, never less).
      assert.ok(proxy.seen[i].at - proxy.seen[i - 1].at >= 990, `request ${i} came ${(proxy.seen[i].at - proxy.seen[i - 1].at).toFixed(0)} ms after a Retry-After of 1 s`);
    }
  });

  test('a download that keeps failing ends DOWNLOAD_FAILED with the cause in the message', async () => {
    proxy.seen.length = 0;
    proxy.otherwise = 'reset';
    await deploy(3);
    const failed = await waitFor(async () => {
      const d = await device();
      return d.updateState === 'failed' ? d : null;
    }, 'the update failed', 60_000, 100);
    const err = failed.reported.lastError;
    assert.equal(err.code, 'DOWNLOAD_FAILED');
    assert.match(err.message, new RegExp(`gave up after ${RETRIES + 1} attempts: .*(socket hang up|ECONNRESET)`));
    assert.equal(proxy.seen.length, RETRIES + 1);
    // The device still serves what it had.
    assert.equal(failed.reported.active.model.version, 2);
  });
});
