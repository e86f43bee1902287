// listenOnSocket (the local API's --api-socket listener): a stale socket file left by a killed agent
// is replaced, a live one or a non-socket file is refused with a message naming the path, and the file
// is gone once the server closes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { listenOnSocket } from './local-api-socket.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'flotilla-sock-'));
});
after(() => rm(dir, { recursive: true, force: true }));

const hello = () => createServer((_req, res) => res.end('hello'));
const get = (socketPath: string) =>
  new Promise<string>((resolve, reject) => {
    request({ socketPath, path: '/' }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve(text));
    })
      .on('error', reject)
      .end();
  });
const close = (s: ReturnType<typeof hello>) => new Promise((r) => s.close(r));

test('a socket file left by a killed process is replaced', async () => {
  const sock = path.join(dir, 'stale.sock');
  // A process that listens and is then killed with SIGKILL leaves its socket file behind.
  const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(sock)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => child.stdout.once('data', r));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.ok(existsSync(sock), 'the killed process left its socket file');
  const server = await listenOnSocket(hello(), sock);
  assert.equal(await get(sock), 'hello');
  await close(server);
  assert.ok(!existsSync(sock), 'closing the server removes the socket file');
});

test('a socket another process listens on, or a file that is not a socket, is refused', async () => {
  const sock = path.join(dir, 'live.sock');
  const first = await listenOnSocket(hello(), sock);
  await assert.rejects(listenOnSocket(hello(), sock), new RegExp(`--api-socket ${sock}: another process is listening on it`));
  assert.equal(await get(sock), 'hello', 'the first listener keeps its socket');
  await close(first);
  const file = path.join(dir, 'plain-file');
  await writeFile(file, 'not a socket');
  await assert.rejects(listenOnSocket(hello(), file), /the path exists and is not a socket/);
  await assert.rejects(listenOnSocket(hello(), path.join(dir, 'no-such-dir', 'api.sock')), /--api-socket .*no-such-dir.*: listen E[A-Z]+/);
});
