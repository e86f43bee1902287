// The agent's HTTP client on node:http/https (http-client.ts), against real local servers: a pinned CA
// is the only one trusted, POST bodies and headers go through, redirects are followed (Authorization
// dropped when the origin changes), and an abort ends a body that stalls.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeCa } from '../test/helpers/test-ca.ts';
import { httpClient } from './http-client.ts';

const listen = async <S extends http.Server>(server: S): Promise<string> => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return `${server instanceof https.Server ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;
};

describe('agent HTTP client', () => {
  let dir: string;
  let goodCa: string;
  let rogueCa: string;
  let tlsUrl: string;
  let plainUrl: string;
  let otherUrl: string;
  const servers: http.Server[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-http-client-'));
    const good = makeCa(dir, 'good');
    goodCa = await readFile(good.ca, 'utf8');
    rogueCa = await readFile(makeCa(dir, 'rogue').ca, 'utf8');
    const tls = https.createServer({ cert: await readFile(good.cert), key: await readFile(good.key) }, (req, res) => res.end(`tls ${req.method}`));
    // Echoes what it got; /redirect-* answer redirects; /stall sends a part of its body and waits.
    const plain = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.url === '/redirect-same') return res.writeHead(302, { location: '/echo' }).end();
        if (req.url === '/redirect-other') return res.writeHead(307, { location: `${otherUrl}/echo` }).end();
        if (req.url === '/stall') return res.writeHead(200, { 'content-length': '100' }).write('x'.repeat(10));
        res.writeHead(201, { 'X-Answer': 'yes', 'content-type': 'application/json' }).end(JSON.stringify({ method: req.method, url: req.url, authorization: req.headers.authorization ?? null, body: Buffer.concat(chunks).toString('utf8') }));
      });
    });
    const other = http.createServer((req, res) => res.end(JSON.stringify({ authorization: req.headers.authorization ?? null, other: true })));
    servers.push(tls, plain, other);
    tlsUrl = await listen(tls);
    plainUrl = await listen(plain);
    otherUrl = await listen(other);
  });
  after(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
    await rm(dir, { recursive: true, force: true });
  });

  test('https: the pinned CA is trusted; another CA or the system CAs are not', async () => {
    const res = await httpClient(goodCa)(`${tlsUrl}/x`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'tls GET');
    await assert.rejects(httpClient(rogueCa)(`${tlsUrl}/x`), /self.signed|unable to verify|certificate/i);
    await assert.rejects(httpClient()(`${tlsUrl}/x`), /self.signed|unable to verify|certificate/i);
  });

  test('POST: method, headers and body reach the server; status, ok and headers come back', async () => {
    const res = await httpClient()(`${plainUrl}/echo`, { method: 'POST', headers: { authorization: 'Basic abc', 'content-type': 'application/json' }, body: '{"a":1}' });
    assert.equal(res.status, 201);
    assert.equal(res.ok, true);
    assert.equal(res.headers.get('x-answer'), 'yes');
    assert.equal(res.headers.get('X-Missing'), null);
    assert.deepEqual(JSON.parse(await res.text()), { method: 'POST', url: '/echo', authorization: 'Basic abc', body: '{"a":1}' });
  });

  test('redirects are followed; Authorization is kept on the same origin and dropped on another', async () => {
    const same = await httpClient()(`${plainUrl}/redirect-same`, { headers: { authorization: 'Basic abc' } });
    assert.deepEqual(JSON.parse(await same.text()), { method: 'GET', url: '/echo', authorization: 'Basic abc', body: '' });
    const other = await httpClient()(`${plainUrl}/redirect-other`, { headers: { authorization: 'Basic abc' } });
    assert.deepEqual(JSON.parse(await other.text()), { authorization: null, other: true });
  });

  test('an abort ends a stalled body; cancel() drops the rest', async () => {
    const ctl = new AbortController();
    const res = await httpClient()(`${plainUrl}/stall`, { signal: ctl.signal });
    let got = 0;
    await assert.rejects(
      (async () => {
        for await (const chunk of res.body) {
          got += chunk.length;
          ctl.abort();
        }
      })(),
      /abort/i,
    );
    assert.equal(got, 10);
    const again = await httpClient()(`${plainUrl}/stall`);
    await again.body.cancel();
  });
});
