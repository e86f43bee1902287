/**
 * The agent's HTTP client (enrollment, artifact downloads, sample uploads): the part of `fetch` it
 * uses, on node:http / node:https. Node's global fetch loads undici's JavaScript and its WASM HTTP
 * parser on first use, which cost an agent 14–20 MB of RSS for good after a single request (measured,
 * agent/README.md "Memory"); node:http is already loaded for the local API.
 *
 * With a CA the https:// requests trust that CA only (not the system's public CAs), as the undici
 * dispatcher did before. Redirects are followed (at most 5), like fetch, and the Authorization header
 * is dropped when a redirect leaves the origin.
 */
import http from 'node:http';
import https from 'node:https';

export interface HttpRequestInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  ok: boolean;
  headers: { get(name: string): string | null };
  /** The body as it arrives; `cancel()` drops the rest (and the connection). */
  body: AsyncIterable<Uint8Array> & { cancel(): Promise<void> };
  text(): Promise<string>;
}

export type HttpFetch = (url: string | URL, init?: HttpRequestInit) => Promise<HttpResponse>;

const MAX_REDIRECTS = 5;

/** A client trusting only `caPem` for https:// URLs, or the system's CAs without one. */
export function httpClient(caPem?: string | null): HttpFetch {
  const tls = caPem ? { ca: caPem, rejectUnauthorized: true } : {};
  return async function request(url, init = {}) {
    let target = new URL(url);
    let headers = { ...init.headers };
    let method = init.method ?? 'GET';
    let body = init.body;
    for (let hop = 0; ; hop++) {
      const res = await send(target, method, headers, body, init.signal, tls);
      const location = res.headers.location;
      if (res.statusCode && [301, 302, 303, 307, 308].includes(res.statusCode) && location && hop < MAX_REDIRECTS) {
        res.resume();
        const next = new URL(location, target);
        if (next.origin !== target.origin) delete headers.authorization;
        // As fetch: 303 (and 301/302 after a POST) continue as a GET without a body.
        if (res.statusCode === 303 || ((res.statusCode === 301 || res.statusCode === 302) && method === 'POST')) {
          method = 'GET';
          body = undefined;
          headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !/^content-(type|length)$/i.test(k)));
        }
        target = next;
        continue;
      }
      return wrap(res);
    }
  };
}

function send(url: URL, method: string, headers: Record<string, string>, body: string | Uint8Array | undefined, signal: AbortSignal | undefined, tls: object): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const options = { method, headers, signal };
    const req = url.protocol === 'https:' ? https.request(url, { ...options, ...tls }, resolve) : url.protocol === 'http:' ? http.request(url, options, resolve) : undefined;
    if (!req) return reject(new TypeError(`unsupported URL scheme ${url.protocol}`));
    req.on('error', reject);
    req.end(body);
  });
}

function wrap(res: http.IncomingMessage): HttpResponse {
  const status = res.statusCode ?? 0;
  const body = Object.assign(res, {
    cancel: async () => {
      res.destroy();
    },
  });
  return {
    status,
    ok: status >= 200 && status < 300,
    headers: {
      get: (name) => {
        const v = res.headers[name.toLowerCase()];
        return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
      },
    },
    body,
    async text() {
      const chunks: Buffer[] = [];
      for await (const chunk of res) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
  };
}
