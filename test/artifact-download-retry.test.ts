// A device's download under faults, everything real: a control plane, the CLI and a compiled agent
// process whose artifact URL (--artifact-url, a mirror) is a small proxy in front of the control plane
// that drops, refuses or holds the requests the test asks it to. What a starved server does to a fleet
// downloading at once (bench/RESULTS.md, "Downloads in a herd") — connections reset, answers that come after the
// idle timeout — is waited out within the update's time bound instead of ending the update after a
// fixed count of attempts; a busy server's Retry-After is waited out; a refusal (404) fails at once;
// a download that keeps failing ends DOWNLOAD_FAILED at the update's bound, naming why — a shadow
// candidate's download too.
import assert from 'node:assert/strict';
import type http from 'node:http';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { api, waitFor } from '../agent/testing/harness.ts';
import { ArtifactProxy } from './helpers/artifact-proxy.ts';
import { gemmModel } from './helpers/models.ts';
import { startPlaneWithAgent, type PlaneWithAgent } from './helpers/plane-with-agent.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');
const RETRIES = 2;
/**
 * The agent's update bound: a download that never succeeds ends then, so two tests wait it out. The
 * updates that succeed wait at most 6 s by design (3 busy answers of 1–2 s; 2 held files of 1.5 s;
 * 5 resets with backoff windows 0.1…1 s), which leaves 8 s for the rest of an update on a loaded machine.
 */
const UPDATE_TIMEOUT_MS = 14_000;
/** Longer than the agent's idle timeout (500 ms below), far shorter than its answer timeout (default 2 min). */
const HOLD_MS = 1500;

type Fault = 'reset' | 'busy' | 'missing' | 'hold' | 'pass';

/** The artifact requests take the next fault of `plan` (then `otherwise`). */
class FaultProxy extends ArtifactProxy {
  plan: Fault[] = [];
  otherwise: Fault = 'pass';
  /** Every artifact request: when it arrived and what it got. */
  readonly seen: Array<{ at: number; fault: Fault }> = [];
  /** Held requests whose client hung up before the answer (a place in the queue given up). */
  abandoned = 0;

  protected override artifact(req: http.IncomingMessage, res: http.ServerResponse): void {
    const fault = this.plan.shift() ?? this.otherwise;
    this.seen.push({ at: performance.now(), fault });
    if (fault === 'reset') return void req.socket.destroy();
    if (fault === 'busy') return void res.writeHead(503, { 'retry-after': '1', 'content-type': 'application/json' }).end('{"error":{"code":"server_busy","message":"busy"}}');
    if (fault === 'missing') return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"not_found","message":"artifact gone"}}');
    if (fault === 'hold') {
      // A starved server's accept queue: the answer comes, late, unless the client left first.
      const timer = setTimeout(() => this.forward(req, res), HOLD_MS);
      res.on('close', () => {
        clearTimeout(timer);
        if (!res.headersSent) this.abandoned++;
      });
      return;
    }
    this.forward(req, res);
  }
}

describe('artifact downloads under faults (real control plane and agent)', { timeout: 240_000 }, () => {
  const proxy = new FaultProxy();
  let p: PlaneWithAgent;

  const device = async () => (await p.cp.api('GET', `/api/v1/devices/${p.deviceId}`)).body;
  /** Pushes and bundles faulty@<version> (a model of its own seed). */
  const build = async (version: number) => {
    await writeFile(path.join(p.dir, `v${version}.onnx`), gemmModel({ seed: version }));
    await p.cli('models', 'push', path.join(p.dir, `v${version}.onnx`), '--name', 'faulty');
    await p.cli('bundles', 'build', `faulty@${version}`, '--def', BUNDLE_DEF);
  };
  const deploy = async (version: number) => {
    await build(version);
    await p.cli('deploy', `faulty@${version}`, '--device', p.deviceId);
  };
  const activeOn = (version: number) =>
    waitFor(async () => {
      const d = await device();
      return d.updateState === 'active' && d.reported?.active?.model?.version === version;
    }, `active on v${version}`, 60_000, 100);

  before(async () => {
    await proxy.start();
    p = await startPlaneWithAgent({ site: 'faults', prefix: 'flotilla-dl-faults-', agentArgs: ['--artifact-url', proxy.url, '--download-retries', String(RETRIES), '--download-idle-timeout-ms', '500', '--update-timeout-ms', String(UPDATE_TIMEOUT_MS)] });
    proxy.target = p.cp.url;
  });
  after(async () => {
    await p?.stop();
    await proxy.stop();
  });

  test(`connections reset more often than --download-retries (${RETRIES}) are retried, and the update activates`, async () => {
    proxy.plan = Array(RETRIES + 3).fill('reset');
    await deploy(1);
    await activeOn(1);
    const faults = proxy.seen.map((s) => s.fault);
    assert.deepEqual(faults.slice(0, RETRIES + 4), [...Array(RETRIES + 3).fill('reset'), 'pass'], 'the same file was asked for again after each drop');
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

  test('an answer that comes after the idle timeout is waited for: no attempt given up, no place in the queue lost', async () => {
    proxy.seen.length = 0;
    // Every request of this update is held (both files, and more than the retries were they abandoned).
    proxy.plan = Array(RETRIES + 2).fill('hold');
    await deploy(3);
    await activeOn(3);
    assert.equal(proxy.abandoned, 0, 'the agent waited for each held answer');
    assert.deepEqual(proxy.seen.map((s) => s.fault), ['hold', 'hold'], 'one request per file');
    proxy.plan = [];
  });

  test('a refusal (404) fails the update at once, naming the server\'s error', async () => {
    proxy.seen.length = 0;
    proxy.otherwise = 'missing';
    await deploy(4);
    const failed = await waitFor(async () => {
      const d = await device();
      return d.updateState === 'failed' ? d : null;
    }, 'the update failed', 60_000, 100);
    assert.equal(failed.reported.lastError.code, 'DOWNLOAD_FAILED');
    assert.match(failed.reported.lastError.message, /HTTP 404 \(not_found: artifact gone\)/);
    assert.equal(proxy.seen.length, 1, 'asked once');
    proxy.otherwise = 'pass';
  });

  test('a download that never succeeds ends DOWNLOAD_FAILED at the update\'s time bound, with the cause in the message', async () => {
    proxy.seen.length = 0;
    proxy.otherwise = 'reset';
    await deploy(5);
    const failed = await waitFor(async () => {
      const d = await device();
      return d.updateState === 'failed' && d.reported?.lastError?.message?.includes('gave up') ? d : null;
    }, 'the update failed', UPDATE_TIMEOUT_MS + 60_000, 200);
    const err = failed.reported.lastError;
    assert.equal(err.code, 'DOWNLOAD_FAILED');
    assert.match(err.message, /gave up after \d+ attempts in \d+ s: .*(socket hang up|ECONNRESET)/);
    assert.ok(proxy.seen.length > RETRIES + 1, `${proxy.seen.length} attempts: more than --download-retries allows for other failures`);
    // The device still serves what it had.
    assert.equal(failed.reported.active.model.version, 3);
  });

  test('a shadow candidate whose download never succeeds is reported failed at the update\'s time bound, not asked for forever', async () => {
    // Back to a healthy device on a new version (the last test left its update failed), then a shadow
    // rollout of the next whose candidate's artifacts are never served.
    proxy.otherwise = 'pass';
    await deploy(6);
    await activeOn(6);
    proxy.seen.length = 0;
    proxy.otherwise = 'reset';
    await build(7);
    await p.cli('cohorts', 'create', 'faults', '--selector', 'site=faults');
    const started = await p.cp.api('POST', '/api/v1/rollouts', { json: { bundle: 'faulty@7', cohort: 'faults', stages: [1], bakeS: 0, shadow: { share: 1, durationS: 3600, windowS: 1 } } });
    assert.equal(started.status, 201, JSON.stringify(started.body));
    const shadow = await waitFor(async () => {
      const s = (await api(p.port, 'GET', '/v1/status')).body.shadow;
      return s?.state === 'failed' ? s : null;
    }, 'the shadow candidate failed', UPDATE_TIMEOUT_MS + 60_000, 200);
    assert.match(shadow.reason, /^DOWNLOAD_FAILED: .*gave up after \d+ attempts in \d+ s: .*(socket hang up|ECONNRESET)/);
    assert.ok(proxy.seen.length > RETRIES + 1, `${proxy.seen.length} attempts: resets are waited out, not counted, until the bound`);
    proxy.otherwise = 'pass';
  });
});
