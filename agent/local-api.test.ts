// The local API (node:http) in front of a real EngineRuntime with a real onnxruntime session: the
// answer to a good request, and the 4xx of every kind of bad input, each `{ error: { code, message } }`.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import { gemmModel } from '../test/helpers/models.ts';
import { EngineRuntime } from './engine-adapter.ts';
import { LocalApi } from './local-api.ts';
import { REPO } from './testing/harness.ts';

const logger = pino({ level: 'silent' });
const ROW = Object.fromEntries([0.5, -1, 2, 0.1, 0, 1.5, -0.3, 0.8].map((v, i) => [`f${i}`, v]));

function call(port: number, method: string, pathname: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; body: any; type?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path: pathname, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text), type: res.headers['content-type'] }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('local API', () => {
  let dir: string;
  let runtime: EngineRuntime;
  let api: LocalApi;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-local-api-'));
    await writeFile(path.join(dir, 'model.onnx'), gemmModel({ seed: 1 }));
    runtime = new EngineRuntime({ logger });
    await runtime.start();
    api = new LocalApi({ host: '127.0.0.1', port: 0, runtime, logger, status: () => ({ hello: 'status' }), maxBodyBytes: 4096 });
    await api.start();
  });
  after(async () => {
    await api.stop();
    await runtime.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers 503 NO_MODEL before a bundle is active, then predictions from the active bundle', async () => {
    assert.deepEqual((await call(api.port, 'GET', '/healthz')).body, { ok: true, model: false });
    const none = await call(api.port, 'POST', '/v1/predict', JSON.stringify({ features: ROW }), { 'content-type': 'application/json' });
    assert.equal(none.status, 503);
    assert.equal(none.body.error.code, 'NO_MODEL');

    const { definition } = await loadBundleDefinition(path.join(REPO, 'firmware-bundles', 'tabular-demo', 'bundle.json'));
    const info = { id: 'b1', name: 'tabular-demo', model: { name: 'tabular-demo', version: 1 }, counter: 1, modelSha256: 'x' };
    await runtime.activate(await runtime.stage(path.join(dir, 'model.onnx'), definition, info));
    const ok = await call(api.port, 'POST', '/v1/predict', JSON.stringify({ features: ROW }), { 'content-type': 'application/json; charset=utf-8' });
    assert.equal(ok.status, 200);
    assert.equal(ok.type, 'application/json');
    assert.deepEqual(ok.body.outputs.logits.dims, [1, 3]);
    assert.equal(ok.body.predictions.length, 3);
    assert.deepEqual(ok.body.bundle, { id: 'b1', name: 'tabular-demo', model: { name: 'tabular-demo', version: 1 }, counter: 1 });
    assert.equal(typeof ok.body.latencyMs, 'number');
    assert.deepEqual((await call(api.port, 'GET', '/healthz')).body, { ok: true, model: true });
    assert.deepEqual((await call(api.port, 'GET', '/v1/status')).body, { hello: 'status' });
  });

  it('refuses bad input with a 4xx and a message, and keeps serving', async () => {
    const json = { 'content-type': 'application/json' };
    const cases: Array<[string, Promise<{ status: number; body: any }>, number, string, RegExp]> = [
      ['not JSON', call(api.port, 'POST', '/v1/predict', '{"features":', json), 400, 'INVALID_INPUT', /not valid JSON/],
      ['no kind', call(api.port, 'POST', '/v1/predict', '{}', json), 400, 'INVALID_INPUT', /exactly one of "features", "inputs" or "image"/],
      ['two kinds', call(api.port, 'POST', '/v1/predict', JSON.stringify({ features: ROW, inputs: {} }), json), 400, 'INVALID_INPUT', /got features, inputs/],
      ['wrong features', call(api.port, 'POST', '/v1/predict', JSON.stringify({ features: { f0: 1 } }), json), 400, 'INVALID_INPUT', /f1/],
      ['media type', call(api.port, 'POST', '/v1/predict', 'x', { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE', /text\/plain is not supported/],
      ['empty image', call(api.port, 'POST', '/v1/predict', Buffer.alloc(0), { 'content-type': 'image/png' }), 400, 'INVALID_IMAGE', /empty image body/],
      ['too large', call(api.port, 'POST', '/v1/predict', JSON.stringify({ features: ROW, pad: 'x'.repeat(5000) }), json), 413, 'TOO_LARGE', /over 4096 bytes/],
      ['unknown route', call(api.port, 'GET', '/v1/predict'), 404, 'NOT_FOUND', /GET \/v1\/predict is not a route/],
    ];
    for (const [what, p, status, code, message] of cases) {
      const r = await p;
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, code, what);
      assert.match(r.body.error.message, message, what);
    }
    const ok = await call(api.port, 'POST', '/v1/predict', JSON.stringify({ features: ROW }), json);
    assert.equal(ok.status, 200);
  });
});
