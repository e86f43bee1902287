// Serves the operator console (web/dist, built by `npm run build:web`) on every GET the API did not
// answer: files by path, index.html for client routes. It runs after routing, so a server route
// (/api/*, /artifacts, /metrics, /docs, …) always wins and /api/* never falls back to the page.
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { MiddlewareHandler } from 'hono';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** Paths the server owns: a miss there is the API's JSON 404, never the console. */
const SERVER_PREFIXES = ['/api/', '/artifacts/', '/metrics', '/healthz'];

// Cross-origin isolation lets onnxruntime-web use threads (SharedArrayBuffer) on the playground.
const ISOLATION = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp', 'x-content-type-options': 'nosniff' };

const MISSING = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Flotilla console not built</title></head>
<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;line-height:1.5">
<h1>The Flotilla console is not built</h1>
<p>The control plane is running, but <code>web/dist</code> is missing. Build the console once:</p>
<pre style="background:#f3f4f6;padding:1rem">npm run build:web</pre>
<p>then reload this page. The API is at <code>/api/v1</code> either way.</p></body></html>`;

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

export function serveConsole(distDir: string): MiddlewareHandler {
  const root = path.resolve(distDir);
  return async (c, next) => {
    await next();
    if (c.res.status !== 404 || (c.req.method !== 'GET' && c.req.method !== 'HEAD')) return;
    const urlPath = decodeURIComponent(c.req.path);
    if (SERVER_PREFIXES.some((p) => urlPath === p.replace(/\/$/, '') || urlPath.startsWith(p))) return;
    const file = path.resolve(root, '.' + path.posix.normalize('/' + urlPath));
    if (file !== root && !file.startsWith(root + path.sep)) return; // outside dist: leave the 404
    const headers: Record<string, string> = { ...ISOLATION };
    if (urlPath !== '/' && (await isFile(file))) {
      headers['content-type'] = TYPES[path.extname(file)] ?? 'application/octet-stream';
      // Vite puts content-hashed files under /assets/: they never change, so cache them for good.
      headers['cache-control'] = urlPath.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache';
      c.res = new Response(c.req.method === 'HEAD' ? null : await readFile(file), { status: 200, headers });
      return;
    }
    // A missing file with an extension is a real 404; anything else is a client route of the SPA.
    if (path.extname(urlPath) && urlPath !== '/') return;
    const index = path.join(root, 'index.html');
    headers['cache-control'] = 'no-cache';
    headers['content-type'] = TYPES['.html'];
    if (!(await isFile(index))) {
      c.res = new Response(c.req.method === 'HEAD' ? null : MISSING, { status: 503, headers });
      return;
    }
    c.res = new Response(c.req.method === 'HEAD' ? null : await readFile(index), { status: 200, headers });
  };
}
