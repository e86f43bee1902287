// An enrollment whose answer never reaches the agent (server/enroll/enroll-nonce.ts, agent/enroll-nonce.ts):
// a real control plane behind a TCP proxy that lets the agent's request through but keeps the server's
// answer from it, and the real agent as a child process. The server commits the device row; the agent,
// killed while it waits (or cut off mid-answer and retrying), must on its next attempt get that same
// identity — not a second row, not a refusal for a token whose single use the lost attempt spent — and
// the token's use is counted once.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AgentProcess, api, freePort, waitFor } from '../agent/testing/harness.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';

type Mode = 'pass' | 'swallow' | 'cut';

/** A TCP proxy to `target`: `pass` forwards both ways; `swallow` drops the server's answers and keeps the
 * connection open; `cut` closes the client's connection as soon as the answer starts. */
async function answerProxy(target: { host: string; port: number }): Promise<{ url: string; mode: Mode; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const state = { mode: 'pass' as Mode };
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    const mode = state.mode;
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream);
    upstream.on('data', (d: Buffer) => {
      if (mode === 'pass') client.write(d);
      else if (mode === 'cut') client.destroy();
    });
    upstream.on('end', () => mode === 'pass' && client.end());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get mode() {
      return state.mode;
    },
    set mode(m: Mode) {
      state.mode = m;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('enrollment whose answer was lost', { timeout: 180_000 }, () => {
  let cp: TestPlane;
  let dir: string;
  let proxy: Awaited<ReturnType<typeof answerProxy>>;
  const agents: AgentProcess[] = [];

  before(async () => {
    cp = await startControlPlane({ driftCron: 'off' });
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-enroll-retry-'));
    const { hostname, port } = new URL(cp.url);
    proxy = await answerProxy({ host: hostname, port: Number(port) });
  });
  after(async () => {
    for (const a of agents) await a.stop();
    await proxy?.close();
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** A single-use token for one agent, its labels telling the devices of the tests apart. */
  const singleUseToken = async (site: string) => {
    const r = await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site }, maxUses: 1 } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.token as string;
  };
  const agentOn = async (dataDir: string, token: string) => {
    const port = await freePort();
    const a = new AgentProcess(['--server', proxy.url, '--enroll-token', token, '--data-dir', dataDir, '--api-port', String(port), '--reconnect-min-ms', '100', '--reconnect-max-ms', '500'], { FLOTILLA_AGENT_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG ?? 'warn' }).start();
    agents.push(a);
    return { a, port };
  };
  const devicesOf = async (site: string) => (await cp.api('GET', `/api/v1/devices?selector=site%3D${site}`)).body.devices as Array<{ id: string; online: boolean }>;
  const usesOf = async (site: string) => ((await cp.api('GET', '/api/v1/enroll-tokens')).body.tokens as Array<{ labels: { site?: string }; uses: number }>).find((t) => t.labels.site === site)!.uses;

  test('an agent killed while waiting for the answer gets the enrolled identity on restart; the single-use token is spent once', async () => {
    const token = await singleUseToken('killed');
    const dataDir = path.join(dir, 'killed');
    proxy.mode = 'swallow';
    const first = await agentOn(dataDir, token);
    // The server enrolled the device; its answer is held back by the proxy.
    const [row] = await waitFor(async () => ((d) => (d.length ? d : undefined))(await devicesOf('killed')), 'the enrolled row', 60_000, 100);
    await first.a.kill9();
    await assert.rejects(stat(path.join(dataDir, 'identity.json')), 'the agent never learned its identity');

    proxy.mode = 'pass';
    const second = await agentOn(dataDir, token);
    const id = await waitFor(async () => (await api(second.port, 'GET', '/v1/status').catch(() => ({ body: {} as { deviceId?: string } }))).body.deviceId, 'the restarted agent enrolled', 60_000, 200);
    assert.equal(id, row.id, 'the identity the lost answer carried');
    await waitFor(async () => (await devicesOf('killed')).find((d) => d.id === row.id)?.online, 'the device connected over MQTT with that identity', 60_000, 200);
    assert.equal((await devicesOf('killed')).length, 1, 'one device row');
    assert.equal(await usesOf('killed'), 1, 'the token use counted once');
    await assert.rejects(stat(path.join(dataDir, 'enroll-nonce')), 'the nonce is dropped once the identity is stored');
  });

  test('an agent whose connection is cut mid-answer retries in the same process and gets the same identity', async () => {
    const token = await singleUseToken('cut');
    proxy.mode = 'cut';
    const { port } = await agentOn(path.join(dir, 'cut'), token);
    const [row] = await waitFor(async () => ((d) => (d.length ? d : undefined))(await devicesOf('cut')), 'the enrolled row', 60_000, 100);
    proxy.mode = 'pass';
    const id = await waitFor(async () => (await api(port, 'GET', '/v1/status').catch(() => ({ body: {} as { deviceId?: string } }))).body.deviceId, 'the agent enrolled on its retry', 90_000, 200);
    assert.equal(id, row.id);
    await waitFor(async () => (await devicesOf('cut')).find((d) => d.id === row.id)?.online, 'the device connected over MQTT', 60_000, 200);
    assert.equal((await devicesOf('cut')).length, 1);
    assert.equal(await usesOf('cut'), 1);
  });
});

describe('enrollment nonce over the API', () => {
  let cp: TestPlane;
  before(async () => {
    cp = await startControlPlane({ driftCron: 'off', schedulerEnabled: false });
  });
  after(async () => {
    await cp?.stop();
  });
  const FACTS = { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' };
  const nonce = () => randomBytes(32).toString('base64url');
  const enroll = (token: string, n?: string) => cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS, ...(n ? { nonce: n } : {}) } });

  test('the same nonce is answered with the same identity and spends no second use; another nonce is another device; a revoked identity stays revoked', async () => {
    const t = await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'api' }, maxUses: 2, autoApprove: false } });
    const token = t.body.token as string;
    const n = nonce();
    const a = await enroll(token, n);
    assert.equal(a.status, 201, JSON.stringify(a.body));
    const again = await enroll(token, n);
    assert.equal(again.status, 201, JSON.stringify(again.body));
    assert.deepEqual([again.body.deviceId, again.body.mqtt.password, again.body.status], [a.body.deviceId, a.body.mqtt.password, 'pending'], 'the same identity, still awaiting approval');
    const uses = async () => ((await cp.api('GET', '/api/v1/enroll-tokens')).body.tokens as Array<{ id: string; uses: number }>).find((x) => x.id === t.body.id)!.uses;
    assert.equal(await uses(), 1, 'the repeat spent nothing');
    const other = await enroll(token, nonce());
    assert.equal(other.status, 201);
    assert.notEqual(other.body.deviceId, a.body.deviceId);
    assert.notEqual(other.body.mqtt.password, a.body.mqtt.password);
    assert.equal(await uses(), 2);
    assert.equal((await enroll(token, nonce())).status, 401, 'a new enrollment past max uses is refused');
    assert.equal((await enroll(token, n)).status, 201, 'its own repeat is still answered');

    assert.equal((await cp.api('POST', `/api/v1/devices/${a.body.deviceId}/revoke`)).status, 200);
    const revoked = await enroll(token, n);
    assert.equal(revoked.status, 401, JSON.stringify(revoked.body));
    assert.match(revoked.body.error.message, /revoked/);
    const bad = await enroll(token, 'short');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'invalid_request');
  });
});
