// GET /docs: Swagger UI for the OpenAPI document, with every script, stylesheet and icon served by the
// control plane itself (nothing from a CDN), and the document naming the event, status and run routes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';

describe('/docs', () => {
  let cp: TestPlane;
  before(async () => {
    cp = await startControlPlane();
  });
  after(() => cp.stop());

  test('serves the page and all its assets locally, without a token', async () => {
    const res = await fetch(`${cp.url}/docs`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/html/);
    const html = await res.text();
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    assert.ok(refs.length >= 3, html);
    assert.ok(refs.every((r) => r.startsWith('/docs/assets/')), `only local assets: ${refs.join(', ')}`);
    for (const ref of refs) {
      const asset = await fetch(cp.url + ref);
      assert.equal(asset.status, 200, ref);
      const body = new Uint8Array(await asset.arrayBuffer());
      assert.ok(body.length > 0, ref);
      if (ref.endsWith('.js')) assert.match(asset.headers.get('content-type')!, /javascript/);
      if (ref.endsWith('.css')) assert.match(asset.headers.get('content-type')!, /text\/css/);
    }
    // The bundle is the real Swagger UI, and the page points it at our document with the validator off.
    const bundle = await (await fetch(`${cp.url}/docs/assets/swagger-ui-bundle.js`)).text();
    assert.ok(bundle.length > 500_000 && bundle.includes('SwaggerUIBundle'));
    const init = await (await fetch(`${cp.url}/docs/assets/init.js`)).text();
    assert.match(init, /url: '\/api\/v1\/openapi\.json'/);
    assert.match(init, /validatorUrl: null/);
    assert.equal((await fetch(`${cp.url}/docs/assets/..%2Fpackage.json`)).status, 404);
    assert.equal((await fetch(`${cp.url}/docs/assets/index.html`)).status, 404);
  });

  test('the OpenAPI document it renders has the event stream, deployment status and run routes', async () => {
    const doc = (await cp.api('GET', '/api/v1/openapi.json', { token: null })).body;
    for (const p of ['/api/v1/events', '/api/v1/events/recent', '/api/v1/deployments/{id}/status', '/api/v1/models/{name}/versions/{version}/run']) assert.ok(doc.paths[p], p);
    assert.ok(doc.components.schemas.Event);
    assert.ok(doc.components.schemas.DeploymentStatus);
  });
});
