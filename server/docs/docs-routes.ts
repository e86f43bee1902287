// GET /docs: the OpenAPI document rendered by Swagger UI, served from the swagger-ui-dist package on
// this server (no CDN, and no call to the public validator: the docs work on an air-gapped network).
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Hono } from 'hono';

const DIST = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
const ASSETS: Record<string, string> = {
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui.css': 'text/css; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};

const INIT = `window.addEventListener('load', () => {
  window.ui = SwaggerUIBundle({ url: '/api/v1/openapi.json', dom_id: '#docs', deepLinking: true, persistAuthorization: false, validatorUrl: null });
});
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Flotilla API</title>
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="docs"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/init.js"></script>
</body>
</html>
`;

export function docsRoutes() {
  const cache = new Map<string, Buffer>();
  return new Hono()
    .get('/', (c) => c.html(PAGE, 200, { 'cache-control': 'no-cache' }))
    .get('/assets/init.js', (c) => c.body(INIT, 200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache' }))
    .get('/assets/:file', async (c) => {
      const file = c.req.param('file');
      const type = ASSETS[file];
      if (!type) return c.json({ error: { code: 'not_found', message: `no docs asset ${file}` } }, 404);
      let body = cache.get(file);
      if (!body) cache.set(file, (body = await readFile(path.join(DIST, file))));
      // The package version is pinned in package-lock.json; an hour of caching is safe across upgrades.
      return c.body(new Uint8Array(body), 200, { 'content-type': type, 'cache-control': 'public, max-age=3600' });
    });
}
