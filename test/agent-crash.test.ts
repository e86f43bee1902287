// Crash safety with the agent as a child process (bin/flotilla-agent.js) and kill -9: an interrupted
// download resumes with a Range request from the part file, and kills at random points of the update
// path (download → activation → probation) always restart into a model whose hash matches a manifest
// the agent had verified.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { AgentProcess, api, ArtifactServer, buildTestBundle, freePort, sha256, TestTrust, waitFor, type TestBundle } from '../agent/testing/harness.ts';
import { canonicalBytes } from '../firmware-bundles/canonical-json.ts';
import type { ReportedMessage } from '../protocol/messages/reported.ts';
import { encodeModel, floatTensor, node, valueInfo } from '../server/onnx/build.ts';
import { observeDevice } from './helpers/device-observer.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

/** features [batch, 8] → Gemm [8, H] → Relu → Gemm [H, 3]: ~H×44 bytes of weights, for slow downloads. */
function wideModel(hidden: number): Uint8Array {
  const w1 = Array.from({ length: 8 * hidden }, (_, i) => Math.sin(i * 0.37) * 0.2);
  const w2 = Array.from({ length: hidden * 3 }, (_, i) => Math.cos(i * 0.11) * 0.05);
  return encodeModel({
    inputs: [valueInfo('features', 'float32', ['batch', 8])],
    outputs: [valueInfo('logits', 'float32', ['batch', 3])],
    initializers: [floatTensor('W1', [8, hidden], w1), floatTensor('b1', [hidden], new Array(hidden).fill(0.01)), floatTensor('W2', [hidden, 3], w2), floatTensor('b2', [3], [0, 0, 0])],
    nodes: [node('Gemm', ['features', 'W1', 'b1'], ['h']), node('Relu', ['h'], ['hr']), node('Gemm', ['hr', 'W2', 'b2'], ['logits'])],
  });
}

const digestOf = (signed: unknown) => createHash('sha256').update(canonicalBytes(signed)).digest('hex');

describe('agent: crash safety (child process, kill -9)', { timeout: 300_000 }, () => {
  let cp: TestPlane;
  let art: ArtifactServer;
  let trust: TestTrust;
  let dataDir: string;
  let port: number;
  let agent: AgentProcess;
  let deviceId: string;
  let observer: MqttClient;
  const reported: ReportedMessage[] = [];
  const statuses: Array<{ state: string }> = [];
  /** Digests of every manifest published: the only ones the agent may ever run. */
  const published = new Set<string>();
  let counter = 0;
  const row = [0.5, -0.1, 0.2, 0.9, -0.4, 0.3, 0.05, -0.7];

  const deploy = async (bundle: TestBundle) => {
    const manifest = trust.bundleManifest(deviceId, bundle, { counter: ++counter });
    published.add(digestOf(manifest.signed));
    await cp.plane.bus.publish(deviceId, 'desired', trust.desired(manifest), { retain: true });
    return manifest.signed.counter;
  };
  const healthy = () =>
    waitFor(() => api(port, 'GET', '/healthz').then((r) => r.status === 200 && r.body.model === true), 'agent serving a model', 45_000).catch((e: Error) => {
      // Say why: the agent's exit and its last output, not only "fetch failed".
      const exit = `exit code ${agent.child?.exitCode}, signal ${agent.child?.signalCode}`;
      throw new Error(`${e.message} (${exit})\n--- agent output ---\n${agent.output.slice(-6000)}`);
    });
  const status = async () => (await api(port, 'GET', '/v1/status')).body;

  before(async () => {
    cp = await startControlPlane();
    art = new ArtifactServer();
    await art.start();
    trust = new TestTrust();
    dataDir = await mkdtemp(path.join(tmpdir(), 'flotilla-agent-crash-'));
    port = await freePort();
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: {} } })).body.token;
    agent = new AgentProcess(
      [
        ...['--server', cp.url, '--enroll-token', token, '--data-dir', dataDir, '--api-port', String(port)],
        ...['--trust-root', trust.rootArg, '--artifact-url', art.url, '--reconnect-min-ms', '50', '--reconnect-max-ms', '400', '--probation-ms', '50'],
      ],
      { FLOTILLA_AGENT_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG ?? 'info' },
    ).start();
    await waitFor(() => api(port, 'GET', '/healthz').then((r) => r.status === 200), 'agent up', 45_000);
    deviceId = JSON.parse(await readFile(path.join(dataDir, 'identity.json'), 'utf8')).deviceId;
    observer = await observeDevice(cp, deviceId, ['reported', 'status'], (channel, msg) => (channel === 'reported' ? reported : statuses).push(msg));
  });

  after(async () => {
    await agent?.stop();
    await observer?.endAsync();
    await art?.stop();
    await cp?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  test('kill -9 during a throttled download: the restart resumes from the part file with Range', async () => {
    const big = await buildTestBundle(wideModel(4096));
    const model = art.add(big.model.bytes, { bytesPerSecond: 120_000 });
    art.add(big.bundleJson.bytes);
    const c = await deploy(big);
    const partSize = async () => {
      for (const dir of await readdir(path.join(dataDir, 'staging')).catch(() => [])) {
        const s = await stat(path.join(dataDir, 'staging', dir, 'model.onnx.part')).catch(() => null);
        if (s) return s.size;
      }
      return 0;
    };
    const atKill = await waitFor(async () => ((await partSize()) > 40_000 ? partSize() : 0), 'a partial download on disk', 45_000);
    await agent.kill9();
    await waitFor(() => statuses.at(-1)?.state === 'offline', 'last will: status offline');
    assert.ok(atKill < model.size, `killed mid-download (${atKill} of ${model.size} bytes)`);
    const requestsBefore = art.requests.length;

    agent.start();
    await waitFor(async () => (await status()).active?.counter === c, 'big bundle active after restart', 45_000);
    const resumed = art.requests.slice(requestsBefore).filter((r) => r.sha256 === model.sha256);
    assert.ok(resumed.length > 0, 'the model was requested again');
    assert.ok(resumed[0].start > 0, `the first request after the restart resumes (Range ${resumed[0].range})`);
    assert.ok(resumed[0].start >= atKill - 1, `from the part file's size (${resumed[0].start} >= ${atKill})`);
    assert.ok(resumed[0].auth?.startsWith('Basic '), 'artifact requests carry the device credentials');
    const s = await status();
    assert.equal(s.active.modelSha256, model.sha256);
    assert.equal(sha256(await readFile(path.join(dataDir, 'current', 'model.onnx'))), model.sha256);
    await waitFor(() => statuses.at(-1)?.state === 'online', 'status online again');
  });

  test('kill -9 at random points of 20 updates: every restart serves a verified model', async () => {
    const X = await buildTestBundle(gemmModel({ seed: 11 }));
    const Y = await buildTestBundle(gemmModel({ seed: 12 }));
    for (const b of [X, Y]) {
      art.add(b.model.bytes);
      art.add(b.bundleJson.bytes);
    }
    const known = new Map<string, number[]>(); // model sha256 → logits for `row` (must never change)
    const phases: Record<string, number> = {};
    const toActivating: number[] = []; // ms from publish to the `activating` transition, seen so far
    const rounds = 20;
    const started = Date.now();
    for (let i = 0; i < rounds; i++) {
      await healthy();
      // Connected and done with whatever the previous kill interrupted, so this kill lands in this update.
      await waitFor(async () => {
        const st = await status();
        return st.mqtt.connected && st.update.running === null && st.update.pending === null;
      }, 'agent connected and idle', 45_000);
      const publishedAt = Date.now();
      const c = await deploy(i % 2 === 0 ? X : Y);
      // Even rounds: anywhere in the update (download … probation … after). Odd rounds: aimed at the
      // activation step, using how long publish → activating took in earlier rounds.
      const aim = toActivating.length ? [...toActivating].sort((a, b) => a - b)[toActivating.length >> 1] : 120;
      const delay = i % 2 === 0 ? Math.random() * 450 : Math.max(0, aim - 25 + Math.random() * 50);
      await new Promise((r) => setTimeout(r, delay));
      const killedAt = Date.now();
      await agent.kill9();
      agent.start();
      await healthy();

      // Where the update was when it was killed, from the transitions the agent had persisted (an
      // update's intermediate phases are written with its next durable step, so a kill may land
      // after a phase that is not on disk yet).
      const s = await status();
      const mine = (s.update.transitions as Array<{ state: string; at: string; counter?: number }>).filter((t) => t.counter === c);
      const activating = mine.find((t) => t.state === 'activating');
      if (activating && Date.parse(activating.at) <= killedAt) toActivating.push(Date.parse(activating.at) - publishedAt);
      const at = mine.filter((t) => Date.parse(t.at) <= killedAt).at(-1)?.state ?? 'not started';
      phases[at] = (phases[at] ?? 0) + 1;

      // What runs must be a model named by a manifest the agent verified, byte for byte. The restarted
      // agent may be finishing this round's update right now (the retained desired state), moving
      // `current`: read one installed bundle's directory (never changed once installed) and a status
      // taken while `current` pointed at it outside an activation, not `current/…` twice (seen: its manifest before a swap,
      // its model after).
      // The answer is taken in the same settled moment: it must come from that very bundle (the update
      // may swap the model between a status and a later request).
      const { st, bundleDir, p } = await waitFor(async () => {
        const link = await readlink(path.join(dataDir, 'current'));
        const st = await status();
        // While `activating`, `current` has moved before the runtime swapped to it: not a settled moment.
        if (st.update.running?.phase === 'activating' || (await readlink(path.join(dataDir, 'current'))) !== link) return undefined;
        const p = await api(port, 'POST', '/v1/predict', { features: row });
        assert.equal(p.status, 200, `round ${i}: predict ${JSON.stringify(p.body)}`);
        const same = p.body.bundle.counter === st.active.counter && (await readlink(path.join(dataDir, 'current'))) === link;
        return same ? { st, bundleDir: path.join(dataDir, link), p } : undefined;
      }, 'a status and an answer taken while current stayed put');
      const onDisk = JSON.parse(await readFile(path.join(bundleDir, 'manifest.json'), 'utf8'));
      assert.ok(published.has(digestOf(onDisk.signed)), `round ${i}: current/manifest.json is a manifest we signed`);
      const modelEntry = onDisk.signed.files.find((f: { path: string }) => f.path === 'model.onnx');
      assert.equal(st.active.modelSha256, modelEntry.sha256, `round ${i}: the active model is the current bundle's`);
      assert.equal(sha256(await readFile(path.join(bundleDir, 'model.onnx'))), modelEntry.sha256, `round ${i}: model file matches its manifest`);
      const logits = p.body.outputs.logits.data as number[];
      const expected = known.get(modelEntry.sha256);
      if (expected) assert.deepEqual(logits, expected, `round ${i}: same model, same answer`);
      else known.set(modelEntry.sha256, logits);
    }
    // After the last restart the retained desired state still converges to the newest manifest.
    await waitFor(async () => (await status()).active?.counter === counter, 'converged to the last manifest', 45_000);
    console.log(`# ${rounds} kill -9 rounds in ${Date.now() - started} ms; last state persisted before each kill: ${JSON.stringify(phases)}`);
  });

  test('a bundle corrupted on disk is detected at start: fall back to the previous one, then reinstall the desired one', async () => {
    // Settled on the newest desired state (the state shown right after a boot is the restored one).
    let seen: unknown;
    await waitFor(async () => {
      const s = (seen = await status());
      return s.active?.counter === counter && s.update.state === 'active' && s.update.running === null;
    }, 'agent settled on the last manifest', 45_000).catch((e: Error) => {
      throw new Error(`${e.message}; last status ${JSON.stringify(seen)}\n--- agent output ---\n${agent.output.slice(-6000)}`);
    });
    const prevText = await readFile(path.join(dataDir, 'previous', 'manifest.json'), 'utf8').catch(() => null);
    assert.ok(prevText, 'a previous bundle is kept on disk');
    const prevCounter = JSON.parse(prevText!).signed.counter;
    const currentCounter = (await status()).active.counter;
    await agent.kill9();
    // Bit rot (or a file half-written by a failing disk) in the current model.
    const modelPath = path.join(dataDir, 'current', 'model.onnx');
    const bytes = await readFile(modelPath);
    bytes[bytes.length >> 1] ^= 0xff;
    await writeFile(modelPath, bytes);
    const from = reported.length;
    agent.start();
    await healthy();
    const fellBack = await waitFor(() => reported.slice(from).find((r) => r.state === 'rolled_back'), 'fallback reported');
    assert.equal(fellBack.lastError!.code, 'HASH_MISMATCH');
    assert.equal(fellBack.active!.counter, prevCounter);
    // The retained desired state still names the broken bundle: it is downloaded and installed again.
    await waitFor(async () => (await status()).active?.counter === currentCounter && (await status()).update.state === 'active', 'reinstalled', 45_000);
    const s = await status();
    assert.equal(sha256(await readFile(path.join(dataDir, 'current', 'model.onnx'))), s.active.modelSha256);
  });

  test('killed after installing a bundle but before recording it: the restart reports the serving bundle active', async () => {
    // Seen in CI: an update superseded (idle), then the newer manifest adopted for the files already
    // serving, and kill -9 before `activating`/`active` were written. The state file then ends on the
    // older update's `idle` while `current` is the newer bundle.
    await waitFor(async () => {
      const s = await status();
      return s.active?.counter === counter && s.update.state === 'active' && s.update.running === null;
    }, 'agent settled on the last manifest', 45_000);
    await agent.kill9();
    const file = path.join(dataDir, 'state.json');
    const saved = JSON.parse(await readFile(file, 'utf8'));
    saved.transitions.push({ state: 'idle', at: new Date().toISOString(), counter: counter - 1, reason: 'SUPERSEDED' });
    await writeFile(file, JSON.stringify(saved));
    const from = reported.length;
    agent.start();
    await healthy();
    const s = await status();
    assert.equal(s.active.counter, counter);
    assert.equal(s.update.state, 'active', 'the serving bundle is reported active, not the older update\'s idle');
    const doc = await waitFor(() => reported.slice(from).filter((r) => r.active?.counter === counter).at(-1), 'reported document after the restart');
    assert.equal(doc.state, 'active');
  });
});
