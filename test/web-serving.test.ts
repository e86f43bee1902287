// How the control plane serves the console (server/http/console.ts): files with their types and cache
// headers, the SPA fallback for client routes only, API misses left as JSON 404s, no way out of the
// dist folder, and a readable page (not a crash) when the console was never built.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Hono } from 'hono';
import { serveConsole } from '../server/http/console.ts';

function appFor(dist: string) {
  const app = new Hono();
  app.use('*', serveConsole(dist));
  app.get('/api/v1/thing', (c) => c.json({ ok: true }));
  app.get('/docs', (c) => c.html('<h1>API docs</h1>'));
  app.notFound((c) => c.json({ error: { code: 'not_found', message: `no route for ${c.req.method} ${c.req.path}` } }, 404));
  return app;
}

describe('console serving', () => {
  let dir: string;
  let dist: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-console-'));
    dist = path.join(dir, 'dist');
    await mkdir(path.join(dist, 'assets'), { recursive: true });
    await writeFile(path.join(dist, 'index.html'), '<!doctype html><title>console</title>');
    await writeFile(path.join(dist, 'assets', 'index-abc123.js'), 'console.log(1)');
    await writeFile(path.join(dist, 'assets', 'ort-abc.wasm'), new Uint8Array([0, 97, 115, 109]));
    await writeFile(path.join(dir, 'secret.txt'), 'outside');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('index at / and for client routes, never cached; COOP/COEP set', async () => {
    const app = appFor(dist);
    for (const p of ['/', '/devices/dev_1', '/cohorts']) {
      const res = await app.request(p);
      assert.equal(res.status, 200, p);
      assert.equal(await res.text(), '<!doctype html><title>console</title>');
      assert.equal(res.headers.get('cache-control'), 'no-cache');
      assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
      assert.equal(res.headers.get('cross-origin-opener-policy'), 'same-origin');
      assert.equal(res.headers.get('cross-origin-embedder-policy'), 'require-corp');
    }
  });

  test('hashed assets are immutable; .wasm is application/wasm', async () => {
    const app = appFor(dist);
    const js = await app.request('/assets/index-abc123.js');
    assert.equal(js.status, 200);
    assert.equal(js.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
    const wasm = await app.request('/assets/ort-abc.wasm');
    assert.equal(wasm.headers.get('content-type'), 'application/wasm');
    assert.deepEqual(new Uint8Array(await wasm.arrayBuffer()), new Uint8Array([0, 97, 115, 109]));
  });

  test('server routes win; /api misses stay JSON 404s; missing files are 404s, not the index', async () => {
    const app = appFor(dist);
    assert.deepEqual(await (await app.request('/api/v1/thing')).json(), { ok: true });
    assert.equal(await (await app.request('/docs')).text(), '<h1>API docs</h1>');
    const miss = await app.request('/api/v1/nothing-here');
    assert.equal(miss.status, 404);
    assert.equal((await miss.json()).error.code, 'not_found');
    assert.equal((await app.request('/assets/gone-123.js')).status, 404);
    assert.equal((await app.request('/api/v1/devices', { method: 'POST' })).status, 404);
  });

  test('no path leaves the dist folder', async () => {
    const app = appFor(dist);
    for (const p of ['/../secret.txt', '/%2e%2e/secret.txt', '/assets/..%2f..%2fsecret.txt']) {
      const res = await app.request(p);
      assert.notEqual(await res.text(), 'outside', p);
    }
  });

  test('without a build, / explains how to build the console instead of failing', async () => {
    const app = appFor(path.join(dir, 'never-built'));
    const res = await app.request('/fleet');
    assert.equal(res.status, 503);
    assert.match(await res.text(), /npm run build:web/);
    assert.equal((await app.request('/api/v1/thing')).status, 200);
  });
});
