// The session's reconnect schedule against a real broker (aedes over TCP) on a port that first refuses
// connections (a restarting control plane), then answers "busy", "not authorized" and finally lets the
// device in. With random = 1 every delay is its whole window, so the schedule is exact, not timed.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, describe, test } from 'node:test';
import { Aedes, type AuthenticateError } from 'aedes';
import pino from 'pino';
import { freePort, waitFor } from './testing/harness.ts';
import { MqttSession, type ConnectOutcome } from './mqtt-session.ts';

describe('MqttSession reconnect schedule', () => {
  const cleanup: Array<() => Promise<unknown> | void> = [];
  after(async () => {
    for (const f of cleanup.reverse()) await f();
  });

  test('refused connects probe within probeMaxMs; busy and denied answers grow the window on from there; a drop starts over', async () => {
    const port = await freePort();
    const outcomes: ConnectOutcome[] = [];
    /** Each delay the session scheduled, in order: one per failed attempt or drop. */
    const delays: number[] = [];
    let drops = 0;
    const logger = pino({ level: 'debug' }, { write: (line: string) => void (/reconnect scheduled/.test(line) && delays.push(JSON.parse(line).inMs)) });
    const session = new MqttSession({
      url: `mqtt://127.0.0.1:${port}`,
      deviceId: 'dev-1',
      password: 'secret',
      agentVersion: '0.1.0',
      logger,
      reconnect: { minMs: 20, maxMs: 2000, probeMaxMs: 80, random: () => 1 },
      onDesired: () => {},
      onCommand: () => {},
      onAttempt: (o) => void outcomes.push(o),
      onDisconnected: () => void drops++,
    });
    cleanup.push(() => session.stop());
    session.start();
    // Nothing listens: the window grows 20, 40, 80 and stays at the 80 ms cap (it would reach 2 s uncapped).
    await waitFor(() => outcomes.length >= 6, 'six refused connects');
    assert.deepEqual(outcomes.slice(0, 6), Array(6).fill('refused'));
    assert.deepEqual(delays.slice(0, 6), [20, 40, 80, 80, 80, 80]);

    // The broker comes up: "busy" twice, then "not authorized", then in.
    const answers: Array<3 | 5 | 0> = [3, 3, 5, 0];
    const broker = await Aedes.createBroker({
      authenticate: (_client, _user, _pass, done) => {
        const code = answers.shift() ?? 0;
        if (code === 0) return done(null, true);
        done(Object.assign(new Error('no'), { returnCode: code }) as AuthenticateError, false);
      },
    });
    const server: Server = createServer(broker.handle);
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
    cleanup.push(() => new Promise((r) => broker.close(() => r(undefined))));
    await waitFor(() => session.connected, 'connected after busy and denied answers');
    const refused = outcomes.indexOf('busy');
    assert.deepEqual(outcomes.slice(refused), ['busy', 'busy', 'denied', 'ok']);
    assert.ok(outcomes.slice(0, refused).every((o) => o === 'refused'));
    // One delay per failed attempt; after the refusals (all at the cap) the broker's answers grow it on.
    assert.ok(delays.slice(0, refused).every((d) => d <= 80));
    assert.deepEqual(delays.slice(refused), [80, 160, 320]);

    // The control plane goes away: one drop, and the window starts again from minMs.
    await new Promise<void>((r) => {
      server.close(() => r());
      for (const c of Object.values((broker as unknown as { clients: Record<string, { close(): void }> }).clients)) c.close();
    });
    await waitFor(() => drops === 1 && outcomes.at(-1) === 'refused', 'the drop and a refused reconnect');
    assert.equal(delays[refused + 3], 20);
  });

  test('an attempt waits connectTimeoutMs for a slow CONNACK: given up (lost) under it, let in over it', async () => {
    // A broker that answers every CONNECT after 1 s, as one working through a storm's queue does.
    const broker = await Aedes.createBroker({ authenticate: (_c, _u, _p, done) => void setTimeout(() => done(null, true), 1000) });
    const server: Server = createServer(broker.handle);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    cleanup.push(() => new Promise((r) => broker.close(() => server.close(() => r(undefined)))));
    const port = (server.address() as { port: number }).port;
    const attempt = async (connectTimeoutMs: number): Promise<ConnectOutcome> => {
      const outcomes: ConnectOutcome[] = [];
      const session = new MqttSession({
        url: `mqtt://127.0.0.1:${port}`,
        deviceId: `dev-${connectTimeoutMs}`,
        password: 'secret',
        agentVersion: '0.1.0',
        logger: pino({ level: 'silent' }),
        // No retry within the test: the first attempt's outcome is the answer.
        reconnect: { minMs: 60_000, maxMs: 60_000, random: () => 1 },
        connectTimeoutMs,
        onDesired: () => {},
        onCommand: () => {},
        onAttempt: (o) => void outcomes.push(o),
      });
      session.start();
      try {
        await waitFor(() => outcomes.length > 0, `the first attempt with a ${connectTimeoutMs} ms timeout`, 30_000);
        return outcomes[0];
      } finally {
        await session.stop();
      }
    };
    assert.equal(await attempt(200), 'lost');
    assert.equal(await attempt(25_000), 'ok');
  });
});
