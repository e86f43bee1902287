// An agent process started with --api-socket: the local API answers on the Unix socket exactly as on
// its TCP port (health, a deployed bundle's prediction, a 400 with its message for bad input), and the
// socket file is removed when the agent stops.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { api, waitFor } from '../agent/testing/harness.ts';
import { gemmModel } from './helpers/models.ts';
import { startPlaneWithAgent, type PlaneWithAgent } from './helpers/plane-with-agent.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');
const ROW = { f0: 0.5, f1: -1, f2: 2, f3: 0.1, f4: 0, f5: 1.5, f6: -0.3, f7: 0.8 };

/** One request over the Unix socket; the body parsed as JSON. */
function overSocket(socketPath: string, method: string, pathname: string, body?: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ socketPath, method, path: pathname, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

let sockDir: string;
let sock: string;
let lab: PlaneWithAgent;
before(async () => {
  sockDir = await mkdtemp(path.join(tmpdir(), 'flotilla-api-sock-'));
  sock = path.join(sockDir, 'api.sock');
  lab = await startPlaneWithAgent({ site: 'lab', prefix: 'flotilla-api-socket-', agentArgs: ['--api-socket', sock] });
});
after(async () => {
  await lab?.stop();
  await rm(sockDir, { recursive: true, force: true });
});

test('--api-socket: the local API answers on the socket as on TCP; the file goes with the agent', async () => {
  const { cli, port, deviceId, dir } = lab;
  const health = await overSocket(sock, 'GET', '/healthz');
  assert.deepEqual(health, { status: 200, body: { ok: true, model: false } });
  assert.equal((await overSocket(sock, 'POST', '/v1/predict', { features: ROW })).body.error.code, 'NO_MODEL');

  await writeFile(path.join(dir, 'm.onnx'), gemmModel({ seed: 3 }));
  await cli('models', 'push', path.join(dir, 'm.onnx'), '--name', 'tabular-demo');
  await cli('bundles', 'build', 'tabular-demo@1', '--def', BUNDLE_DEF);
  await cli('deploy', 'tabular-demo@1', '--device', deviceId);
  await waitFor(async () => (await lab.cp.api('GET', `/api/v1/devices/${deviceId}`)).body.updateState === 'active', 'bundle active', 60_000);

  const viaSocket = await overSocket(sock, 'POST', '/v1/predict', { features: ROW });
  const viaTcp = await api(port, 'POST', '/v1/predict', { features: ROW });
  assert.equal(viaSocket.status, 200, JSON.stringify(viaSocket.body));
  assert.deepEqual(viaSocket.body.outputs, viaTcp.body.outputs);
  assert.deepEqual(viaSocket.body.results, viaTcp.body.results);
  assert.equal(viaSocket.body.bundle.model.version, 1);

  const bad = await overSocket(sock, 'POST', '/v1/predict', { features: { f0: 1 } });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.code, 'INVALID_INPUT');
  assert.match(bad.body.error.message, /f1/);

  assert.ok(existsSync(sock));
  await lab.agent.stop();
  assert.ok(!existsSync(sock), 'the agent removed its socket file on stop');
});
