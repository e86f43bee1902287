// TLS end to end with certificates made in the test (openssl CLI, nothing checked in): the control
// plane serves HTTPS, MQTT over TLS and MQTT over secure WebSocket; an agent pinned to the test CA
// enrolls over HTTPS and connects over mqtts://, and the CA it pinned refuses a broker whose
// certificate comes from another CA (no connection, no CONNECT sent).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { AgentProcess, freePort, waitFor } from '../agent/testing/harness.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { makeCa } from './helpers/test-ca.ts';

describe('TLS: HTTPS, mqtts:// and wss:// with a pinned CA', () => {
  let dir: string;
  let good: { ca: string; cert: string; key: string };
  let rogue: { ca: string; cert: string; key: string };
  let cp: TestPlane;
  const agents: AgentProcess[] = [];
  const admin = async (method: string, pathname: string, json?: unknown) => {
    const res = await fetch(`${cp.url}${pathname}`, {
      method,
      headers: { authorization: `Bearer ${cp.adminToken}`, ...(json ? { 'content-type': 'application/json' } : {}) },
      body: json ? JSON.stringify(json) : undefined,
      // @ts-expect-error undici option: the test's own client trusts the test CA
      dispatcher: caDispatcher,
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  let caDispatcher: unknown;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-tls-'));
    good = makeCa(dir, 'good');
    rogue = makeCa(dir, 'rogue');
    const { Agent } = await import('undici');
    caDispatcher = new Agent({ connect: { ca: await readFile(good.ca, 'utf8') } });
    cp = await startControlPlane({
      tls: { certPem: await readFile(good.cert, 'utf8'), keyPem: await readFile(good.key, 'utf8') },
      tlsCaPem: await readFile(good.ca, 'utf8'),
      mqttWsPort: 0,
    });
  });
  after(async () => {
    for (const a of agents) await a.stop();
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('the control plane speaks HTTPS and mqtts://, and enrollment hands out the CA to pin', async () => {
    assert.match(cp.url, /^https:/);
    assert.match(cp.mqttUrl, /^mqtts:/);
    await assert.rejects(fetch(`${cp.url}/healthz`), 'an unpinned client does not trust the test CA');
    const token = (await admin('POST', '/api/v1/enroll-tokens', { labels: {} })).body.token;
    const res = await fetch(`${cp.url}/api/v1/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token, facts: { arch: 'x64', cpus: 1, memoryBytes: 1, os: 'linux', agentVersion: '0.1.0' } }),
      // @ts-expect-error undici option
      dispatcher: caDispatcher,
    });
    const body = (await res.json()) as any;
    assert.equal(res.status, 201);
    assert.equal(body.tls.ca, await readFile(good.ca, 'utf8'));
    assert.match(body.mqtt.url, /^mqtts:\/\//);
    // MQTT over secure WebSocket, verified against the CA from the enrollment answer.
    const ws = await mqtt.connectAsync(`wss://127.0.0.1:${cp.plane.mqttWsPort}/mqtt`, {
      clientId: body.deviceId,
      username: body.deviceId,
      password: body.mqtt.password,
      ca: body.tls.ca,
      rejectUnauthorized: true,
      reconnectPeriod: 0,
    });
    assert.ok(ws.connected);
    await ws.endAsync();
  });

  test('an agent pinned to the test CA enrolls over HTTPS and connects over mqtts://', async () => {
    const token = (await admin('POST', '/api/v1/enroll-tokens', { labels: { site: 'tls' } })).body.token;
    const dataDir = path.join(dir, 'agent-good');
    const port = await freePort();
    const agent = new AgentProcess(['--server', cp.url, '--enroll-token', token, '--data-dir', dataDir, '--api-port', String(port), '--ca', good.ca, '--reconnect-min-ms', '50', '--reconnect-max-ms', '400'], {
      FLOTILLA_AGENT_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG ?? 'info',
    }).start();
    agents.push(agent);
    const identity = await waitFor(() => readFile(path.join(dataDir, 'identity.json'), 'utf8').then(JSON.parse, () => null), 'enrolled', 30_000);
    assert.equal(identity.tls.ca, await readFile(good.ca, 'utf8'));
    await waitFor(async () => (await admin('GET', `/api/v1/devices/${identity.deviceId}`)).body.online, `device online over mqtts\n${agent.output}`, 30_000);
    await agent.stop();
  });

  test('the pinned agent refuses a broker whose certificate comes from another CA', async () => {
    // A rogue broker that would let anyone in, on TLS with a certificate from another CA.
    const broker = await Aedes.createBroker();
    let clients = 0;
    broker.on('client', () => clients++);
    let refusedHandshakes = 0;
    const server: TlsServer = createTlsServer({ cert: await readFile(rogue.cert, 'utf8'), key: await readFile(rogue.key, 'utf8') }, (s) => broker.handle(s));
    server.on('tlsClientError', () => refusedHandshakes++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const roguePort = (server.address() as AddressInfo).port;
    try {
      // The enrolled device's identity, pointed at the rogue broker (as a hijacked DNS name or a leaked URL would).
      const dataDir = path.join(dir, 'agent-good');
      const idFile = path.join(dataDir, 'identity.json');
      const identity = JSON.parse(await readFile(idFile, 'utf8'));
      await writeFile(idFile, JSON.stringify({ ...identity, mqtt: { ...identity.mqtt, url: `mqtts://127.0.0.1:${roguePort}` } }));
      const agent = new AgentProcess(['--data-dir', dataDir, '--api-port', String(await freePort()), '--reconnect-min-ms', '50', '--reconnect-max-ms', '200'], {
        FLOTILLA_AGENT_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG ?? 'info',
      }).start();
      agents.push(agent);
      await waitFor(() => refusedHandshakes >= 3, `the agent aborted TLS handshakes with the rogue broker\n${agent.output}`, 30_000);
      assert.equal(clients, 0, 'no MQTT session with the rogue broker');
      assert.match(agent.output, /self.signed|unable to (get|verify)|certificate/i);
      await agent.stop();
    } finally {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
