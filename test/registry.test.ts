// Model registry over real HTTP: push, metadata, versions, aliases, lineage, tags, deletion, bad uploads.
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eq } from 'drizzle-orm';
import { apiTokens, modelVersions } from '../server/db/schema.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

const MAX_UPLOAD = 64 * 1024;

describe('model registry', () => {
  let cp: TestPlane;
  before(async () => {
    cp = await startControlPlane({ maxUploadBytes: MAX_UPLOAD });
  });
  after(() => cp.stop());

  const push = (name: string, bytes: Uint8Array, query = '', token?: string) =>
    cp.api('POST', `/api/v1/models/${name}/versions${query}`, { body: bytes as BodyInit, token, headers: { 'content-type': 'application/octet-stream' } });

  const versionCount = async () => (await cp.plane.db.select().from(modelVersions)).length;
  const blobCount = async () => (await readdir(path.join(cp.dataDir, 'artifacts', 'sha256'))).length;

  test('first start stores the admin token with mode 0600', async () => {
    const s = await stat(path.join(cp.dataDir, 'admin-token'));
    assert.equal(s.mode & 0o777, 0o600);
  });

  test('push records ONNX metadata and numbers versions per model', async () => {
    const v1 = await push('churn', gemmModel({ seed: 1 }), '?notes=first&metric=accuracy=0.91&tag=team=ml');
    assert.equal(v1.status, 201, JSON.stringify(v1.body));
    assert.equal(v1.body.ref, 'churn@1');
    assert.equal(v1.body.opset, 13);
    assert.match(v1.body.producer, /flotilla/);
    assert.deepEqual(v1.body.inputs, [{ name: 'features', dtype: 'float32', shape: ['batch', 8] }]);
    assert.deepEqual(v1.body.outputs, [{ name: 'logits', dtype: 'float32', shape: ['batch', 3] }]);
    assert.equal(v1.body.paramCount, 8 * 3 + 3);
    assert.equal(v1.body.initializerBytes, (8 * 3 + 3) * 4);
    assert.equal(v1.body.size, gemmModel({ seed: 1 }).length);
    assert.deepEqual(v1.body.metrics, { accuracy: 0.91 });
    assert.deepEqual(v1.body.tags, { team: 'ml' });
    const v2 = await push('churn', gemmModel({ seed: 2 }), '?parent=churn@1');
    assert.equal(v2.body.ref, 'churn@2');
    assert.equal(v2.body.parent, 'churn@1');
    const other = await push('fraud', gemmModel({ seed: 3 }));
    assert.equal(other.body.ref, 'fraud@1', 'numbering is per model');
    const shown = await cp.api('GET', '/api/v1/models/churn/versions/1');
    assert.deepEqual(shown.body.children, ['churn@2']);
    const blob = await cp.api('GET', '/api/v1/models');
    assert.deepEqual(
      blob.body.models.map((m: { name: string; versions: number }) => [m.name, m.versions]),
      [
        ['churn', 2],
        ['fraud', 1],
      ],
    );
  });

  test('aliases resolve, tags change, deleting a referenced version is refused', async () => {
    const a = await cp.api('PUT', '/api/v1/models/churn/aliases/champion', { json: { version: 1 } });
    assert.equal(a.status, 200);
    assert.equal((await cp.api('GET', '/api/v1/models/churn/versions/champion')).body.version, 1);
    assert.equal((await cp.api('GET', '/api/v1/models/churn/versions/latest')).body.version, 2);
    const t = await cp.api('PATCH', '/api/v1/models/churn/versions/2/tags', { json: { set: { stage: 'canary' }, remove: [] } });
    assert.deepEqual(t.body.tags, { stage: 'canary' });
    const refused = await cp.api('DELETE', '/api/v1/models/churn/versions/1');
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, 'conflict');
    assert.deepEqual(refused.body.error.details.references.sort(), ['alias churn@champion', 'child churn@2']);
    // The leaf version has no references and can go; its artifact goes with it.
    const before = await blobCount();
    assert.equal((await cp.api('DELETE', '/api/v1/models/fraud/versions/1')).status, 204);
    assert.equal(await blobCount(), before - 1);
    assert.equal((await cp.api('GET', '/api/v1/models/fraud/versions/1')).status, 404);
  });

  test('a file that is not ONNX, or a truncated one, is refused and leaves nothing behind', async () => {
    const rows = await versionCount();
    const blobs = await blobCount();
    const notOnnx = await push('churn', new TextEncoder().encode('this is a CSV,not,a,model\n1,2,3'));
    assert.equal(notOnnx.status, 422);
    assert.equal(notOnnx.body.error.code, 'invalid_model');
    const bytes = gemmModel({ seed: 9 });
    const truncated = await push('churn', bytes.slice(0, bytes.length - 20));
    assert.equal(truncated.status, 422);
    assert.match(truncated.body.error.message, /truncated|not a valid ONNX/);
    assert.equal(await versionCount(), rows);
    assert.equal(await blobCount(), blobs);
    assert.deepEqual(await cp.plane.store.pendingTempFiles(), []);
  });

  test('an upload over the size limit gets 413 and leaves nothing behind', async () => {
    const rows = await versionCount();
    const big = new Uint8Array(MAX_UPLOAD + 1);
    const res = await push('churn', big);
    assert.equal(res.status, 413);
    assert.equal(res.body.error.code, 'payload_too_large');
    // Without a Content-Length the limit is enforced while streaming.
    const chunked = await fetch(`${cp.url}/api/v1/models/churn/versions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cp.adminToken}` },
      body: new ReadableStream({
        start(ctrl) {
          for (let i = 0; i < 3; i++) ctrl.enqueue(new Uint8Array(MAX_UPLOAD / 2));
          ctrl.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    assert.equal(chunked.status, 413);
    assert.equal(await versionCount(), rows);
    assert.deepEqual(await cp.plane.store.pendingTempFiles(), []);
  });

  test('an upload cut off mid-stream leaves no version row and no partial file', async () => {
    const rows = await versionCount();
    const bytes = gemmModel({ seed: 5 });
    const { port } = new URL(cp.url);
    await new Promise<void>((resolve, reject) => {
      const sock = connect(Number(port), '127.0.0.1', () => {
        sock.write(
          `POST /api/v1/models/churn/versions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${cp.adminToken}\r\n` +
            `Content-Type: application/octet-stream\r\nContent-Length: ${bytes.length}\r\n\r\n`,
        );
        sock.write(bytes.slice(0, 50));
        setTimeout(() => sock.destroy(), 100);
      });
      sock.on('close', () => resolve());
      sock.on('error', reject);
    });
    // Give the server a moment to notice the abort and clean up.
    for (let i = 0; i < 50 && (await cp.plane.store.pendingTempFiles()).length; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(await cp.plane.store.pendingTempFiles(), []);
    assert.equal(await versionCount(), rows);
    assert.equal((await cp.api('GET', '/healthz')).status, 200, 'server keeps running');
  });

  test('bad references, names and metrics are 4xx with a clear message', async () => {
    const badParent = await push('churn', gemmModel(), '?parent=churn@99');
    assert.equal(badParent.status, 404);
    assert.match(badParent.body.error.message, /churn@99/);
    const badName = await push('Bad Name', gemmModel());
    assert.equal(badName.status, 400);
    const badMetric = await push('churn', gemmModel(), '?metric=accuracy=high');
    assert.equal(badMetric.status, 400);
    assert.match(badMetric.body.error.message, /metric "accuracy"/);
    const badAlias = await cp.api('PUT', '/api/v1/models/churn/aliases/champion', { json: { version: 'one' } });
    assert.equal(badAlias.status, 400);
    assert.ok(badAlias.body.error.details.issues.length > 0);
    const malformed = await cp.api('PUT', '/api/v1/models/churn/aliases/champion', { body: '{"version": 1', headers: { 'content-type': 'application/json' } });
    assert.equal(malformed.status, 400);
    assert.equal(malformed.body.error.code, 'malformed_json');
    assert.equal((await cp.api('GET', '/api/v1/models/nope/versions/1')).status, 404);
  });

  test('tokens: missing, wrong and expired tokens are 401; roles scope writes', async () => {
    assert.equal((await cp.api('GET', '/api/v1/models', { token: null })).status, 401);
    const wrong = await cp.api('GET', '/api/v1/models', { token: 'flt_wrong' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error.code, 'unauthorized');
    const expired = await cp.api('POST', '/api/v1/tokens', { json: { name: 'short', role: 'viewer', ttlSeconds: 60 } });
    await cp.plane.db.update(apiTokens).set({ expiresAt: new Date(Date.now() - 1000).toISOString() }).where(eq(apiTokens.id, expired.body.id));
    const exp = await cp.api('GET', '/api/v1/models', { token: expired.body.token });
    assert.equal(exp.status, 401);
    assert.match(exp.body.error.message, /expired/);

    const mk = async (role: string) => (await cp.api('POST', '/api/v1/tokens', { json: { name: role, role } })).body.token as string;
    const viewer = await mk('viewer');
    const operator = await mk('operator');
    const engineer = await mk('ml-engineer');
    assert.equal((await cp.api('GET', '/api/v1/models', { token: viewer })).status, 200, 'viewer reads');
    assert.equal((await push('churn', gemmModel(), '', viewer)).status, 403, 'viewer cannot push');
    assert.equal((await push('churn', gemmModel(), '', operator)).status, 403, 'operator cannot push');
    assert.equal((await push('churn', gemmModel({ seed: 4 }), '', engineer)).status, 201, 'ml-engineer pushes');
    const cohort = { json: { name: 'c1', selector: 'site=x' } };
    assert.equal((await cp.api('POST', '/api/v1/cohorts', { ...cohort, token: engineer })).status, 403, 'ml-engineer cannot manage cohorts');
    assert.equal((await cp.api('POST', '/api/v1/cohorts', { ...cohort, token: operator })).status, 201, 'operator manages cohorts');
    assert.equal((await cp.api('POST', '/api/v1/tokens', { json: { name: 'x', role: 'admin' }, token: operator })).status, 403, 'only admins mint tokens');
    assert.equal((await cp.api('GET', '/api/v1/audit', { token: viewer })).status, 403, 'audit is admin-only');
  });

  test('every mutating call is in the audit log', async () => {
    const res = await cp.api('GET', '/api/v1/audit?limit=1000');
    const actions = new Set(res.body.entries.map((e: { action: string }) => e.action));
    for (const a of ['model.version.create', 'model.alias.set', 'model.version.tag', 'model.version.delete', 'token.create', 'cohort.create']) {
      assert.ok(actions.has(a), `audit has ${a}`);
    }
    const create = res.body.entries.find((e: { action: string; target: string }) => e.action === 'model.version.create' && e.target === 'churn@2');
    assert.match(create.actor, /bootstrap-admin/);
  });

  test('openapi.json, /metrics and /healthz', async () => {
    const doc = await cp.api('GET', '/api/v1/openapi.json', { token: null });
    assert.equal(doc.status, 200);
    assert.ok(doc.body.paths['/api/v1/models/{name}/versions'].post);
    assert.ok(doc.body.paths['/api/v1/devices/{id}/revoke'].post);
    const metrics = await fetch(`${cp.url}/metrics`).then((r) => r.text());
    assert.match(metrics, /flotilla_http_requests_total\{method="POST",route="\/api\/v1\/models\/:name\/versions",status="201"\} \d+/);
    assert.match(metrics, /flotilla_devices_connected 0/);
    assert.equal((await cp.api('GET', '/healthz', { token: null })).status, 200);
  });
});
