// Child process of the reconnect bench: many devices in one process, each the agent's own MqttSession
// (same backoff, same subscriptions, same `status` publish), counting when each is connected and has
// its desired state. `mark` starts a new epoch (the restart): from then on only new connects and new
// desired messages count. Progress and per-device times go to the parent over IPC, with every connect
// attempt of the epoch (time and outcome) for the parent's timeline.
import type { MqttClient } from 'mqtt';
import pino from 'pino';
import { MqttSession, type ConnectOutcome } from '../agent/mqtt-session.ts';

interface Device {
  id: string;
  password: string;
}
type Msg =
  | { type: 'start'; url: string; devices: Device[]; reconnect: { minMs: number; maxMs: number; probeMaxMs: number }; connectTimeoutMs: number }
  | { type: 'mark'; probeMaxMs: number; connectTimeoutMs: number };

const logger = pino({ level: 'silent' });
let sessions: MqttSession[] = [];
let connectedAt: Array<number | undefined> = [];
let desiredAt: Array<number | undefined> = [];
/** Per device, this epoch's connect attempts: [time it ended, outcome, ms it took]. */
let attempts: Array<Array<[number, ConnectOutcome, number]>> = [];
/** Per device, when the restart dropped its connection. */
let droppedAt: Array<number | undefined> = [];
let epoch = 0;
let reconnect = { minMs: 1000, maxMs: 15_000, probeMaxMs: 4000 };
let reported = -1;
/** CPU used from here on is reported: reset at `mark`, so the storm is counted without loading and the first connects. */
let cpu0 = process.cpuUsage();

function ready(): number {
  let n = 0;
  for (let i = 0; i < sessions.length; i++) if (connectedAt[i] !== undefined && desiredAt[i] !== undefined) n++;
  return n;
}

function report(): void {
  const n = ready();
  if (n === reported) return;
  reported = n;
  const done = n === sessions.length;
  const u = process.cpuUsage(cpu0);
  process.send!({
    type: 'progress',
    epoch,
    ready: n,
    total: sessions.length,
    ...(done ? { connectedAt, desiredAt, attempts, droppedAt, readyAt: desiredAt.map((d, i) => Math.max(d!, connectedAt[i]!)), cpuSeconds: (u.user + u.system) / 1e6 } : {}),
  });
}
setInterval(report, 250);
// The bench ends a run with SIGTERM: exit at once (sockets and all), writing a CPU profile if one was asked for.
process.once('SIGTERM', () => process.exit(0));

process.on('message', async (m: Msg) => {
  if (m.type === 'start') {
    reconnect = m.reconnect;
    connectedAt = m.devices.map(() => undefined);
    desiredAt = m.devices.map(() => undefined);
    attempts = m.devices.map(() => []);
    droppedAt = m.devices.map(() => undefined);
    sessions = m.devices.map(
      (d, i) =>
        new MqttSession({
          url: m.url,
          deviceId: d.id,
          password: d.password,
          agentVersion: '0.1.0',
          logger,
          reconnect,
          connectTimeoutMs: m.connectTimeoutMs,
          onDesired: () => void (desiredAt[i] ??= Date.now()),
          onCommand: () => {},
          onConnected: () => void (connectedAt[i] ??= Date.now()),
          onAttempt: (outcome, ms) => void attempts[i].push([Date.now(), outcome, ms]),
          onDisconnected: () => void (droppedAt[i] ??= Date.now()),
        }),
    );
    // The first connect is ramped (it is setup, not the measured storm): at most 500 attempts in flight,
    // so a loaded machine is not thrown into a storm of timeouts before the measurement starts.
    for (let i = 0; i < sessions.length; i++) {
      sessions[i].start();
      while (i + 1 - connectedAt.filter((t) => t !== undefined).length >= 500) await new Promise((r) => setTimeout(r, 50));
    }
  } else if (m.type === 'mark') {
    // Every session holds this one options object: the next restart is met with this probe cap.
    reconnect.probeMaxMs = m.probeMaxMs;
    // MQTT.js reads its connectTimeout option at every attempt; the session passes it once, at start.
    for (const s of sessions) ((s as unknown as { client: MqttClient }).client.options.connectTimeout = m.connectTimeoutMs);
    epoch++;
    reported = -1;
    cpu0 = process.cpuUsage();
    connectedAt = sessions.map(() => undefined);
    desiredAt = sessions.map(() => undefined);
    attempts = sessions.map(() => []);
    droppedAt = sessions.map(() => undefined);
    process.send!({ type: 'marked', epoch });
  }
});
