// The agent's update path end to end: a real control plane (embedded MQTT broker, enrollment API), a
// real HTTP artifact server, real onnxruntime. The agent runs in this process (its inference in a
// worker thread); manifests are signed here with firmware-bundles and published as the server would.
import assert from 'node:assert/strict';
import { lstat, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { api, buildTestBundle, sha256, type TestBundle, type TestTrust, waitFor } from '../agent/testing/harness.ts';
import { imageModel } from '../firmware-bundles/testing/fixtures.ts';
import type { CommandResponse } from '../protocol/messages/command.ts';
import type { ReportedMessage } from '../protocol/messages/reported.ts';
import { AgentLab } from './helpers/agent-lab.ts';
import { batchOneOnlyModel, gemmModel } from './helpers/models.ts';

describe('agent: update path over real MQTT', { timeout: 90_000 }, () => {
  let lab: AgentLab;
  const reported: ReportedMessage[] = [];
  const cmdRes: CommandResponse[] = [];
  const statuses: Array<{ state: string }> = [];
  let A: TestBundle;
  let B: TestBundle;
  let counter = 0;

  const deploy = (bundle: TestBundle, o: Partial<Parameters<TestTrust['manifest']>[2]> = {}) => lab.deploy(bundle, { counter: o.counter ?? ++counter, ...o });
  const last = () => reported.at(-1);
  const until = (what: string, fn: (r: ReportedMessage) => boolean, ms = 15_000) => waitFor(() => (reported.length > 0 && fn(last()!) ? last() : undefined), what, ms);
  const predict = (body: unknown, headers?: Record<string, string>) => api(lab.port, 'POST', '/v1/predict', body, headers);
  const row = [0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8];

  before(async () => {
    lab = await AgentLab.start({
      prefix: 'flotilla-agent-',
      agent: { reconnectMinMs: 50, reconnectMaxMs: 500, probationMs: 400, probationRequests: 50, probationMinRequests: 3, probationMaxErrorRate: 0.5, downloadRetries: 2 },
    });
    // Observe what the server sees, with the server's own broker credentials.
    await lab.observe(['reported', 'cmd/res', 'status'], (channel, msg) => {
      if (channel === 'reported') reported.push(msg);
      else if (channel === 'cmd/res') cmdRes.push(msg);
      else statuses.push(msg);
    });
    A = await lab.bundle(gemmModel({ seed: 1 }));
    B = await lab.bundle(gemmModel({ seed: 2 }));
  });

  after(async () => {
    await lab?.stop();
  });

  test('enrolls once, keeps its identity 0600, announces itself online, serves nothing yet', async () => {
    const file = path.join(lab.dataDir, 'identity.json');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const identity = JSON.parse(await readFile(file, 'utf8'));
    assert.equal(identity.deviceId, lab.deviceId);
    assert.equal(identity.trust.keyid, lab.trust.root.keyid);
    assert.equal(identity.trust.source, 'pinned');
    await waitFor(() => statuses.some((s) => s.state === 'online'), 'status online');
    const device = await lab.cp.api('GET', `/api/v1/devices/${lab.deviceId}`);
    assert.equal(device.status, 200);
    const none = await predict({ features: row });
    assert.equal(none.status, 503);
    assert.equal(none.body.error.code, 'NO_MODEL');
    assert.equal((await api(lab.port, 'GET', '/healthz')).body.model, false);
  });

  test('happy path: desired → active; the API answers with the new bundle; a second bundle replaces it', async () => {
    const t0 = Date.now();
    await deploy(A);
    await until('bundle 1 active', (r) => r.state === 'active' && r.active?.counter === 1);
    const deployToActiveMs = Date.now() - t0;
    const r1 = await predict({ features: row });
    assert.equal(r1.status, 200, JSON.stringify(r1.body));
    assert.equal(r1.body.bundle.counter, 1);
    assert.equal(r1.body.bundle.id, 'bnd_1');
    assert.equal(r1.body.predictions.length, 3); // top 3 of one row
    assert.deepEqual(r1.body.outputs.logits.dims, [1, 3]);
    assert.equal(typeof r1.body.latencyMs, 'number');

    const states = last()!.transitions.filter((t) => t.counter === 1).map((t) => t.state);
    assert.deepEqual(states, ['downloading', 'verifying', 'staging', 'activating', 'probation', 'active']);
    for (const t of last()!.transitions) assert.ok(!Number.isNaN(Date.parse(t.at)), 'every transition has a timestamp');
    assert.equal(last()!.active!.modelSha256, A.model.sha256);
    // The server stored what the device reported (presence and reported writes are batched: within a flush).
    await waitFor(async () => (await lab.cp.api('GET', `/api/v1/devices/${lab.deviceId}`)).body.reported?.state === 'active', 'server stored the reported state');

    await deploy(B);
    await until('bundle 2 active', (r) => r.state === 'active' && r.active?.counter === 2);
    const r2 = await predict({ features: row });
    assert.equal(r2.body.bundle.counter, 2);
    assert.notDeepEqual(r2.body.outputs.logits.data, r1.body.outputs.logits.data);
    // On disk: current → bundle 2, previous → bundle 1 (kept for rollback), each with its signed manifest.
    const current = await readlink(path.join(lab.dataDir, 'current'));
    const previous = await readlink(path.join(lab.dataDir, 'previous'));
    assert.match(current, /^bundles\/2-/);
    assert.match(previous, /^bundles\/1-/);
    assert.equal(sha256(await readFile(path.join(lab.dataDir, current, 'model.onnx'))), B.model.sha256);
    assert.ok((await lstat(path.join(lab.dataDir, current, 'manifest.json'))).isFile());
    const status = await api(lab.port, 'GET', '/v1/status');
    assert.equal(status.body.deviceId, lab.deviceId);
    assert.equal(status.body.active.counter, 2);
    assert.equal(status.body.update.state, 'active');
    console.log(`# deploy→active (first bundle, incl. ${400} ms probation window): ${deployToActiveMs} ms`);
  });

  test('a redelivered desired message (same manifest) is not applied twice', async () => {
    const before = last()!.transitions.length;
    await lab.agent.session!.stop().catch(() => {});
    // Reconnecting redelivers the retained desired state; simulate with a fresh publish of the same message.
    lab.agent.session!.start();
    await waitFor(() => lab.agent.session!.connected, 'reconnected');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(last()!.transitions.length, before);
    assert.equal(last()!.state, 'active');
  });

  const rejectCases: Array<{ name: string; code: string | string[]; manifest: () => Promise<Parameters<TestTrust['desired']>[0]> }> = [
    {
      name: 'tampered artifact',
      code: 'HASH_MISMATCH',
      manifest: async () => {
        const m = await buildTestBundle(gemmModel({ seed: 3 }));
        lab.art.add(m.model.bytes, { tamper: true });
        lab.art.add(m.bundleJson.bytes);
        return lab.trust.bundleManifest(lab.deviceId, m, { counter: ++counter });
      },
    },
    {
      name: 'wrong signature (payload altered after signing)',
      code: 'BAD_SIGNATURE',
      manifest: async () => {
        const env = lab.trust.bundleManifest(lab.deviceId, A, { counter: ++counter });
        return { ...env, signed: { ...env.signed, counter: env.signed.counter + 100 } };
      },
    },
    { name: 'unknown key', code: 'UNKNOWN_KEY', manifest: async () => lab.trust.bundleManifest(lab.deviceId, A, { counter: ++counter, signer: lab.trust.outsider }) },
    {
      name: 'expired manifest',
      code: 'EXPIRED',
      manifest: async () => lab.trust.bundleManifest(lab.deviceId, A, { counter: ++counter, now: new Date(Date.now() - 2 * 86_400_000), expiresAt: new Date(Date.now() - 86_400_000) }),
    },
    { name: 'replayed older manifest', code: 'ROLLBACK', manifest: async () => lab.trust.bundleManifest(lab.deviceId, A, { counter: 1, bundleId: 'bnd_replay' }) },
    { name: 'manifest for another device', code: 'WRONG_DEVICE', manifest: async () => lab.trust.bundleManifest('dev_someoneelse1', A, { counter: ++counter }) },
    {
      name: 'server sends more bytes than the manifest says (Content-Length)',
      code: ['TOO_LARGE', 'SIZE_MISMATCH'],
      manifest: async () => {
        const m = await buildTestBundle(gemmModel({ seed: 4 }));
        lab.art.add(m.model.bytes, { extraBytes: 4096 });
        lab.art.add(m.bundleJson.bytes);
        return lab.trust.bundleManifest(lab.deviceId, m, { counter: ++counter });
      },
    },
    {
      name: 'server streams endless data (no Content-Length)',
      code: ['TOO_LARGE', 'SIZE_MISMATCH'],
      manifest: async () => {
        const m = await buildTestBundle(gemmModel({ seed: 5 }));
        lab.art.add(m.model.bytes, { extraBytes: 1 << 20, chunked: true });
        lab.art.add(m.bundleJson.bytes);
        return lab.trust.bundleManifest(lab.deviceId, m, { counter: ++counter });
      },
    },
    {
      name: 'smoke test mismatch (model differs from what the vectors were recorded on)',
      code: 'SMOKE_TEST_FAILED',
      manifest: async () => {
        const recorded = await buildTestBundle(gemmModel({ seed: 6 }));
        const other = gemmModel({ seed: 7 });
        const o = lab.art.add(other);
        lab.art.add(recorded.bundleJson.bytes);
        return lab.trust.manifest(
          lab.deviceId,
          [
            { path: 'model.onnx', ...o },
            { path: 'bundle.json', sha256: recorded.bundleJson.sha256, size: recorded.bundleJson.size },
          ],
          { counter: ++counter },
        );
      },
    },
    {
      name: 'a model onnxruntime cannot load',
      code: 'MODEL_LOAD_FAILED',
      manifest: async () => {
        const junk = Buffer.from('this is not an ONNX model at all '.repeat(40));
        const o = lab.art.add(junk);
        lab.art.add(A.bundleJson.bytes);
        return lab.trust.manifest(
          lab.deviceId,
          [
            { path: 'model.onnx', ...o },
            { path: 'bundle.json', sha256: A.bundleJson.sha256, size: A.bundleJson.size },
          ],
          { counter: ++counter },
        );
      },
    },
  ];

  for (const c of rejectCases) {
    test(`rejects ${c.name} with ${[c.code].flat().join('/')}; the old model keeps serving`, async () => {
      const manifest = await c.manifest();
      const wantCounter = (manifest!.signed as { counter: number }).counter;
      const codes = [c.code].flat();
      await lab.publish(manifest);
      const got = await until(`failed with ${codes}`, (x) => x.state === 'failed' && x.lastError?.counter === wantCounter);
      assert.ok(codes.includes(got.lastError!.code), `expected ${codes}, got ${got.lastError!.code}: ${got.lastError!.message}`);
      assert.equal(got.active?.counter, 2, 'the active bundle did not change');
      const p = await predict({ features: row });
      assert.equal(p.status, 200);
      assert.equal(p.body.bundle.counter, 2);
      assert.match(await readlink(path.join(lab.dataDir, 'current')), /^bundles\/2-/);
    });
  }

  test('a newer desired state supersedes a download in progress', async () => {
    const slow = await buildTestBundle(gemmModel({ seed: 8 }));
    lab.art.add(slow.model.bytes, { bytesPerSecond: 100 });
    lab.art.add(slow.bundleJson.bytes);
    const first = ++counter;
    await deploy(slow, { counter: first });
    await until('slow download running', (r) => r.state === 'downloading' && r.desired?.counter === first);
    const second = ++counter;
    await deploy(B, { counter: second, bundleId: 'bnd_newer' });
    const r = await until('newer bundle active', (x) => x.state === 'active' && x.active?.counter === second);
    const superseded = r.transitions.find((t) => t.counter === first && t.state === 'idle');
    assert.equal(superseded?.reason, 'SUPERSEDED');
    assert.ok(!r.transitions.some((t) => t.counter === first && t.state === 'activating'));
  });

  test('hot swap: requests sent continuously through two swaps see zero failures', async () => {
    const startedOn = last()!.active!.counter;
    const seen = new Map<number, number>();
    const failures: string[] = [];
    let stop = false;
    const loop = async () => {
      while (!stop) {
        const r = await predict({ features: [row, row] });
        if (r.status !== 200) failures.push(`${r.status} ${JSON.stringify(r.body)}`);
        else seen.set(r.body.bundle.counter, (seen.get(r.body.bundle.counter) ?? 0) + 1);
      }
    };
    const loops = [loop(), loop(), loop(), loop()];
    try {
      const first = ++counter;
      await deploy(A, { counter: first });
      await until('swap 1 active', (r) => r.state === 'active' && r.active?.counter === first);
      const second = ++counter;
      await deploy(B, { counter: second });
      await until('swap 2 active', (r) => r.state === 'active' && r.active?.counter === second);
      await new Promise((r) => setTimeout(r, 100));
      stop = true;
      await Promise.all(loops);
      assert.deepEqual(failures, []);
      assert.ok((seen.get(startedOn) ?? 0) > 0 && (seen.get(first) ?? 0) > 0 && (seen.get(second) ?? 0) > 0, `requests on every bundle: ${JSON.stringify([...seen])}`);
      const total = [...seen.values()].reduce((a, b) => a + b, 0);
      console.log(`# hot swap: ${total} requests across 2 swaps, 0 failures`);
    } finally {
      stop = true;
      await Promise.all(loops);
    }
  });

  test('probation: a model that fails under real traffic is rolled back to the previous bundle', async () => {
    const good = last()!.active!.counter;
    const bad = await lab.bundle(batchOneOnlyModel());
    let stop = false;
    let served = 0;
    // Batches of two rows: fine on the good model, an onnxruntime error on the bad one.
    const traffic = (async () => {
      while (!stop) {
        const r = await predict({ features: [row, row] });
        if (r.status === 200) served++;
        else await new Promise((res) => setTimeout(res, 5));
      }
    })();
    try {
      const c = ++counter;
      await deploy(bad, { counter: c });
      const r = await until('rolled back', (x) => x.state === 'rolled_back' && x.lastError?.counter === c);
      assert.equal(r.lastError!.code, 'PROBATION_FAILED');
      assert.equal(r.active!.counter, good);
      assert.deepEqual(
        r.transitions.filter((t) => t.counter === c).map((t) => t.state),
        ['downloading', 'verifying', 'staging', 'activating', 'probation', 'rolled_back'],
      );
    } finally {
      stop = true;
      await traffic;
    }
    assert.ok(served > 0);
    const p = await predict({ features: [row, row] });
    assert.equal(p.status, 200);
    assert.equal(p.body.bundle.counter, good);
    assert.equal(sha256(await readFile(path.join(lab.dataDir, 'current', 'model.onnx'))), last()!.active!.modelSha256);
  });

  test('commands: ping answers on cmd/res with the request id; an unsigned rollback is refused and changes nothing', async () => {
    const exp = () => new Date(Date.now() + 30_000).toISOString();
    await lab.cp.plane.bus.publish(lab.deviceId, 'cmd', { v: 1, id: 'ping-1', command: 'ping', args: {}, expiresAt: exp() });
    const pong = await waitFor(() => cmdRes.find((r) => r.id === 'ping-1'), 'ping reply');
    assert.equal(pong.status, 'ok');
    assert.equal((pong as { data: { pong: boolean } }).data.pong, true);

    // Deploy A on top; an unsigned rollback does not take the device off it.
    const c = ++counter;
    await deploy(A, { counter: c });
    await until('A active', (r) => r.state === 'active' && r.active?.counter === c);
    await lab.cp.plane.bus.publish(lab.deviceId, 'cmd', { v: 1, id: 'rb-1', command: 'rollback', args: {}, expiresAt: exp() });
    const rb = await waitFor(() => cmdRes.find((r) => r.id === 'rb-1'), 'rollback reply');
    assert.equal(rb.status === 'error' && rb.error.code, 'SIGNED_ONLY');
    assert.equal((await predict({ features: row })).body.bundle.counter, c);
    // Stale orders and orders without an expiry are dropped; other unsigned commands are refused.
    await lab.cp.plane.bus.publish(lab.deviceId, 'cmd', { v: 1, id: 'old-1', command: 'ping', args: {}, expiresAt: new Date(Date.now() - 1000).toISOString() });
    await lab.cp.plane.bus.publish(lab.deviceId, 'cmd', { v: 1, id: 'noexp-1', command: 'ping', args: {} });
    await lab.cp.plane.bus.publish(lab.deviceId, 'cmd', { v: 1, id: 'cap-1', command: 'capture-samples', args: {}, expiresAt: exp() });
    const cap = await waitFor(() => cmdRes.find((r) => r.id === 'cap-1'), 'capture reply');
    assert.equal(cap.status === 'error' && cap.error.code, 'SIGNED_ONLY');
    assert.ok(!cmdRes.some((r) => r.id === 'old-1'));
    assert.equal(cmdRes.find((r) => r.id === 'noexp-1')?.status, 'error');
    assert.equal(last()!.active!.counter, c);
  });

  test('local API: bad images and wrong shapes are 4xx while the image model keeps serving', async () => {
    const img = await lab.bundle(imageModel(), 'image-demo'); // its smoke vectors travel as smoke.bin
    const c = ++counter;
    await lab.deploy(img, { counter: c, name: 'image-demo' });
    await until('image bundle active', (r) => r.state === 'active' && r.active?.counter === c);
    const png = await sharp({ create: { width: 40, height: 30, channels: 3, background: { r: 200, g: 30, b: 90 } } }).png().toBuffer();
    const ok = await predict(new Uint8Array(png), { 'content-type': 'image/png' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.bundle.counter, c);
    assert.equal(ok.body.predictions[0].label.length > 0, true);

    const junk = await predict(new Uint8Array(Buffer.from('definitely not a PNG')), { 'content-type': 'image/png' });
    assert.equal(junk.status, 400);
    assert.equal(junk.body.error.code, 'INVALID_IMAGE');
    const b64 = await predict({ image: Buffer.from('nope').toString('base64') });
    assert.equal(b64.status, 400);
    assert.equal(b64.body.error.code, 'INVALID_IMAGE');
    const shape = await predict({ inputs: { image: { dims: [1, 3, 8, 8], data: new Array(3 * 8 * 8).fill(0) } } });
    assert.equal(shape.status, 400);
    assert.equal(shape.body.error.code, 'INVALID_INPUT');
    assert.match(shape.body.error.message, /shape|dim/);
    const count = await predict({ inputs: { image: { dims: [1, 3, 32, 32], data: [1, 2, 3] } } });
    assert.equal(count.status, 400);
    const wrongKind = await predict({ features: row });
    assert.equal(wrongKind.status, 400);
    assert.equal((await predict('not json at all' as unknown as object, { 'content-type': 'application/json' })).status, 400);
    assert.equal((await api(lab.port, 'POST', '/v1/predict', new Uint8Array([1, 2]), { 'content-type': 'text/plain' })).status, 415);
    const again = await predict(new Uint8Array(png), { 'content-type': 'image/png' });
    assert.equal(again.status, 200);
    assert.deepEqual(again.body.outputs, ok.body.outputs);
  });

  test('key rotation reaches the device through desired state: new key accepted, retired key refused, older list ignored', async () => {
    const v1 = lab.trust.keylistEnvelope;
    const retired = lab.trust.rotate();
    const c = ++counter;
    await deploy(A, { counter: c });
    const r = await until('active under key list v2', (x) => x.state === 'active' && x.active?.counter === c);
    assert.equal(r.keylistVersion, 2);
    const stale = lab.trust.bundleManifest(lab.deviceId, B, { counter: ++counter, signer: retired });
    await lab.publish(stale);
    const refused = await until('retired key refused', (x) => x.state === 'failed' && x.lastError?.counter === counter);
    assert.equal(refused.lastError!.code, 'UNKNOWN_KEY');
    // A server replaying the old key list cannot roll the device's trust back.
    const c2 = ++counter;
    await lab.publish(lab.trust.bundleManifest(lab.deviceId, B, { counter: c2 }), v1);
    const ok = await until('active, still on key list v2', (x) => x.state === 'active' && x.active?.counter === c2);
    assert.equal(ok.keylistVersion, 2);
    const manifestSignedByOldKeyWithOldList = lab.trust.bundleManifest(lab.deviceId, A, { counter: ++counter, signer: retired });
    await lab.publish(manifestSignedByOldKeyWithOldList, v1);
    const no = await until('retired key refused under a replayed list', (x) => x.state === 'failed' && x.lastError?.counter === counter);
    assert.equal(no.lastError!.code, 'UNKNOWN_KEY');
  });

  test('a manifest naming a file the agent reserves is refused before any download', async () => {
    const n = lab.art.requests.length;
    const m = lab.trust.manifest(
      lab.deviceId,
      [
        { path: 'model.onnx', sha256: A.model.sha256, size: A.model.size },
        { path: 'bundle.json', sha256: A.bundleJson.sha256, size: A.bundleJson.size },
        { path: 'manifest.json', sha256: A.bundleJson.sha256, size: A.bundleJson.size },
      ],
      { counter: ++counter },
    );
    await lab.publish(m);
    const r = await until('refused', (x) => x.state === 'failed' && x.lastError?.counter === counter);
    assert.equal(r.lastError!.code, 'INVALID_BUNDLE');
    assert.equal(lab.art.requests.length, n);
  });
});
