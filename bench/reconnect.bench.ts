// Reconnect storm (issue 18): N devices with real credentials and real desired state reconnect at
// once after a control-plane restart (SIGTERM, start again on the same ports). Measured: time from the
// restart until every device is connected and has its desired state again, the spread of reconnects,
// server CPU seconds per device, /healthz latency during the storm. Baseline in the same run: the
// same storm with every credential still an scrypt hash (what each connect cost before the change,
// and what the first restart after upgrading costs once: those hashes are migrated during it).
// Also: the credential check alone (sha256 vs scrypt) and presence writes batched vs one per event.
//
// BENCH_RECONNECT_SIZES (default "1000,10000") and BENCH_RECONNECT_BASELINE (default 1000) pick N;
// BENCH_RECONNECT_OLD_SCHEDULE=0 skips each fleet's restart with the agents' earlier schedule (a 10 s
// connect timeout); BENCH_RECONNECT_PROBE_MAX_MS / BENCH_RECONNECT_CONNECT_TIMEOUT_MS override today's.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import pino from 'pino';
import { parseAgentConfig } from '../agent/config.ts';
import { freePort } from '../agent/testing/harness.ts';
import { createKeyList, signKeyList } from '../firmware-bundles/key-list.ts';
import { generateKeyPair } from '../firmware-bundles/keys.ts';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import { hashDeviceSecret, verifyDeviceSecret } from '../server/auth/device-credentials.ts';
import { randomSecret, scryptHash } from '../server/auth/secrets.ts';
import { ControlPlane } from '../server/control-plane.ts';
import { openDatabase } from '../server/db/client.ts';
import { devices } from '../server/db/schema.ts';
import { DeviceStateWriter } from '../server/devices/device-state-writer.ts';
import { createEnrollToken, enrollDevice } from '../server/enroll/enroll-service.ts';
import { loadServerConfig } from '../server/env.ts';
import { createLogger } from '../server/logger.ts';
import { gemmModel } from '../test/helpers/models.ts';
import { percentile, printTable, timeMany, type BenchRow } from './lib.ts';
import { buildTimeline, printTimeline, type DeviceTrace, type Timeline } from './reconnect-timeline.ts';
import { counterDelta, ListenQueueSampler, tcpExtCounters, type Counters, type QueueSample } from './listen-queue.ts';

const FACTS = { arch: 'arm64', cpus: 4, memoryBytes: 4 * 1024 ** 3, os: 'linux 6.1', agentVersion: '0.1.0' };
const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo', 'bundle.json');
/** The agent's defaults (agent/config.ts): the storm is shaped by the backoff devices really use. */
const AGENT_DEFAULTS = parseAgentConfig({});
const RECONNECT = { minMs: AGENT_DEFAULTS.reconnectMinMs, maxMs: AGENT_DEFAULTS.reconnectMaxMs, probeMaxMs: Number(process.env.BENCH_RECONNECT_PROBE_MAX_MS ?? AGENT_DEFAULTS.reconnectProbeMaxMs) };
/** What the agents do on a restart: how long their refused probes wait at most, and one attempt's timeout. */
interface Schedule {
  probeMaxMs: number;
  connectTimeoutMs: number;
}
const TODAY: Schedule = { probeMaxMs: RECONNECT.probeMaxMs, connectTimeoutMs: Number(process.env.BENCH_RECONNECT_CONNECT_TIMEOUT_MS ?? AGENT_DEFAULTS.mqttConnectTimeoutMs) };
/** The schedule before the 30 s connect timeout (agents gave an attempt 10 s). */
const EARLIER: Schedule = { ...TODAY, connectTimeoutMs: 10_000 };
/**
 * Simulated devices per client process: each device is one socket, and a process may hold at most
 * `ulimit -n` descriptors (20,000 on the machine this was measured on, not raisable), so a 19,900
 * device fleet needs several processes. At least two, so the devices are not one event loop.
 */
const DEVICES_PER_CLIENT_PROCESS = 5000;
const STORM_TIMEOUT_MS = 10 * 60_000;
const SERVER_BUNDLE = path.join(import.meta.dirname, '..', 'dist', 'server', 'flotilla-server.js');
/** USER_HZ: /proc reports CPU time in these ticks (100 on Linux). */
const CLOCK_TICKS = 100;

interface Fleet {
  dir: string;
  env: NodeJS.ProcessEnv;
  mqttUrl: string;
  httpUrl: string;
  devices: Array<{ id: string; password: string }>;
  /** Baseline fleets share one secret, stored as an scrypt hash just before the restart. */
  legacySecret?: string;
}

/**
 * A free port below the kernel's ephemeral range (32768+ here). While the server restarts, thousands of
 * probes connect to its closed port from ephemeral ports; one that gets the port itself as its source
 * connects to itself (TCP simultaneous open) and holds it, and the new server fails with EADDRINUSE.
 */
async function portBelowEphemeral(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const s = createNetServer().once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

/** A data dir with N enrolled, approved devices, each with signed desired state (a cohort deployment). */
async function makeFleet(n: number, legacy: boolean): Promise<Fleet> {
  const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-reconnect-bench-'));
  const [httpPort, mqttPort] = [await freePort(), await portBelowEphemeral()];
  const env = {
    FLOTILLA_DATA_DIR: dir,
    FLOTILLA_HTTP_HOST: '127.0.0.1',
    FLOTILLA_HTTP_PORT: String(httpPort),
    FLOTILLA_MQTT_HOST: '127.0.0.1',
    FLOTILLA_MQTT_PORT: String(mqttPort),
    // BENCH_SERVER_LOG_LEVEL=info shows the server's start and stop phases (phasesMs) on stderr.
    FLOTILLA_LOG_LEVEL: process.env.BENCH_SERVER_LOG_LEVEL ?? 'error',
  };
  const plane = new ControlPlane(loadServerConfig(env), createLogger('silent'));
  await plane.start();
  const api = async (method: string, p: string, body?: unknown, raw?: BodyInit) => {
    const req = () =>
      fetch(plane.httpUrl + p, {
        method,
        headers: { authorization: `Bearer ${plane.adminToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: raw ?? (body ? JSON.stringify(body) : undefined),
      });
    // After the long enrollment loop the kept-alive connection may have just been closed by the server.
    const res = await req().catch(req);
    const json = await res.json();
    if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  await api('POST', '/api/v1/models/storm/versions', undefined, gemmModel() as BodyInit);
  const root = generateKeyPair();
  const release = await api('POST', '/api/v1/keys/release');
  await api('PUT', '/api/v1/keys/keylist', signKeyList(createKeyList({ version: 1, root, keys: [release], threshold: 1, expiresAt: new Date(Date.now() + 86400e3) }), root.privateKeyPem));
  await api('POST', '/api/v1/cohorts', { name: 'storm', selector: 'fleet=storm' });
  const { definition, labels } = await loadBundleDefinition(BUNDLE_DEF);
  const bundle = await api('POST', '/api/v1/bundles', { model: 'storm@1', definition, labels });
  // Enrollment through the server's own service function (the HTTP route is a thin wrapper of it).
  const token = await createEnrollToken(plane.db, { labels: { fleet: 'storm' }, autoApprove: true, maxUses: n, actor: 'bench' });
  const fleet: Fleet['devices'] = [];
  for (let i = 0; i < n; i++) {
    const r = await enrollDevice(plane.db, { token: token.token, facts: FACTS });
    fleet.push({ id: r.deviceId, password: r.secret });
  }
  await api('POST', '/api/v1/deployments', { bundle: bundle.id, cohort: 'storm' });
  // Baseline: hashing N secrets with scrypt would take N × 51 ms of setup, so the devices share one
  // secret (fast hash for the setup connects, one scrypt hash of it before the restart): each connect
  // of the storm still pays one full scrypt verify and one migration write, which is what is measured.
  const legacySecret = legacy ? randomSecret('fld') : undefined;
  if (legacySecret) {
    await plane.db.update(devices).set({ credentialHash: hashDeviceSecret(legacySecret) });
    for (const d of fleet) d.password = legacySecret;
  }
  await plane.stop();
  return { dir, env, mqttUrl: `mqtt://127.0.0.1:${mqttPort}`, httpUrl: `http://127.0.0.1:${httpPort}`, devices: fleet, legacySecret };
}

/**
 * The control plane as shipped (`npm start` runs this compiled bundle), on fixed ports so a restart comes
 * back where the devices look for it; ready when /healthz answers (the HTTP API is the last thing start() opens).
 */
function startServer(env: NodeJS.ProcessEnv, httpUrl: string): { child: ChildProcess; ready: Promise<{ at: number }> } {
  // BENCH_SERVER_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=prof") goes to the server's node: a profile of the storm.
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, SERVER_BUNDLE], { env: { ...process.env, ...env }, stdio: ['ignore', process.env.BENCH_SERVER_LOG_LEVEL ? 'inherit' : 'ignore', 'inherit'] });
  const ready = (async () => {
    let exited = false;
    child.once('exit', () => (exited = true));
    for (;;) {
      if (exited) throw new Error('server exited during start');
      if (await fetch(httpUrl + '/healthz').then((r) => r.ok, () => false)) return { at: Date.now() };
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return { child, ready };
}

/** CPU seconds (user + system) the process has used since it started, from /proc. */
async function serverCpu(child: ChildProcess): Promise<number> {
  const stat = await readFile(`/proc/${child.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

interface Progress {
  type: string;
  epoch: number;
  ready: number;
  total: number;
  connectedAt?: number[];
  desiredAt?: number[];
  attempts?: DeviceTrace['attempts'][];
  droppedAt?: Array<number | undefined>;
  readyAt?: number[];
  cpuSeconds?: number;
}

class Clients {
  readonly children: ChildProcess[] = [];
  private last: Progress[] = [];

  constructor(fleet: Fleet) {
    const processes = Math.max(2, Math.ceil(fleet.devices.length / DEVICES_PER_CLIENT_PROCESS));
    const per = Math.ceil(fleet.devices.length / processes);
    for (let k = 0; k < processes; k++) {
      // BENCH_CLIENT_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=prof") goes to the simulated devices' node: they share the cores.
      const nodeArgs = (process.env.BENCH_CLIENT_NODE_ARGS ?? '').split(' ').filter(Boolean);
      const child = fork(path.join(import.meta.dirname, 'reconnect-clients.ts'), { execArgv: ['--import', 'tsx', ...nodeArgs], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      child.on('message', (m: Progress) => {
        if (m.type === 'progress') this.last[k] = m;
      });
      child.send({ type: 'start', url: fleet.mqttUrl, devices: fleet.devices.slice(k * per, (k + 1) * per), reconnect: RECONNECT, connectTimeoutMs: TODAY.connectTimeoutMs });
      this.children.push(child);
    }
  }

  /** Resolves with every child's final progress once all devices of `epoch` are back. */
  async allReady(epoch: number, onTick?: () => void): Promise<Progress[]> {
    const end = Date.now() + STORM_TIMEOUT_MS;
    for (;;) {
      const l = this.last;
      if (l.length === this.children.length && l.every((p) => p.epoch === epoch && p.ready === p.total && p.readyAt)) return l;
      if (Date.now() > end) throw new Error(`devices not back after ${STORM_TIMEOUT_MS / 1000} s: ${l.map((p) => `${p.ready}/${p.total}`).join(', ')}`);
      onTick?.();
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Devices back in the current epoch, as last reported. */
  get ready(): number {
    return this.last.reduce((n, p) => n + (p?.ready ?? 0), 0);
  }

  async mark(schedule: Schedule): Promise<void> {
    await Promise.all(
      this.children.map(
        (c) =>
          new Promise<void>((resolve) => {
            const on = (m: { type: string }) => m.type === 'marked' && (c.off('message', on), resolve());
            c.on('message', on);
            c.send({ type: 'mark', ...schedule });
          }),
      ),
    );
    this.last = [];
  }

  /** SIGTERM (a clean exit writes a CPU profile), SIGKILL if it does not come. */
  async kill(): Promise<void> {
    await Promise.all(
      this.children.map(async (c) => {
        if (c.exitCode !== null || c.signalCode !== null) return;
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        c.kill('SIGKILL');
      }),
    );
  }
}

interface StormResult {
  n: number;
  allBackS: number;
  sinceReadyS: number;
  p50S: number;
  p90S: number;
  firstS: number;
  serverCpuPerDeviceMs: number;
  clientCpuS: number;
  healthzMaxMs: number;
  healthzP95Ms: number;
  /** SIGTERM until the old process exited (a clean stop: devices dropped, acknowledged messages stored). */
  stopS: number;
  /** The new process's spawn until /healthz answers. */
  startS: number;
  load: string;
  /** The agents' reconnectProbeMaxMs and connect timeout in this restart. */
  probeMaxMs: number;
  connectTimeoutMs: number;
  timeline: Timeline;
  /** TcpExt counters (machine-wide) from SIGTERM until all were back. */
  tcp: Counters;
  /** The MQTT listener's queues every 100 ms from SIGTERM. */
  listen: QueueSample[];
}

/**
 * One fleet, one restart per entry of `schedules` (what the agents do in that restart, set at the
 * mark): schedules compared on the same fleet and machine in one run.
 */
async function storm(n: number, legacy: boolean, schedules: Schedule[]): Promise<StormResult[]> {
  const fleet = await makeFleet(n, legacy);
  let server = startServer(fleet.env, fleet.httpUrl);
  await server.ready;
  const clients = new Clients(fleet);
  try {
    await clients.allReady(0);
    if (fleet.legacySecret) {
      // Every row as enrolled before the change (the running server reads hashes per connect, caches none).
      const { db, client } = await openDatabase(loadServerConfig(fleet.env).dbUrl);
      await db.update(devices).set({ credentialHash: await scryptHash(fleet.legacySecret) });
      client.close();
    }
    const results: StormResult[] = [];
    for (const [k, schedule] of schedules.entries()) {
      await clients.mark(schedule);
      const loadBefore = os.loadavg()[0];
      // The restart: a clean stop (every connection dropped), then a new process on the same ports.
      const mqttPort = Number(new URL(fleet.mqttUrl).port);
      const sampler = new ListenQueueSampler(mqttPort);
      const tcp0 = await tcpExtCounters();
      const t0 = Date.now();
      sampler.start();
      const exited = new Promise((r) => server.child.once('exit', r));
      server.child.kill('SIGTERM');
      await exited;
      const tStopped = Date.now();
      server = startServer(fleet.env, fleet.httpUrl);
      // /healthz every 100 ms from the moment it answers (the broker is up before HTTP is).
      const healthz: number[] = [];
      let inFlight = false;
      const probe = () => {
        if (inFlight) return;
        inFlight = true;
        const t = performance.now();
        fetch(fleet.httpUrl + '/healthz')
          .then((r) => r.ok && healthz.push(performance.now() - t))
          .catch(() => {})
          .finally(() => (inFlight = false));
      };
      const ready = await server.ready;
      // A line every 5 s, so a storm that does not converge still shows where it stands.
      let nextLine = Date.now() + 5000;
      const live = () => {
        if (Date.now() < nextLine) return;
        nextLine += 5000;
        const q = sampler.samples.at(-1);
        console.log(`  ${((Date.now() - t0) / 1000).toFixed(0)} s: ${clients.ready} of ${n} back; accept queue ${q?.acceptQueue ?? '-'}/${q?.backlog ?? '-'}, SYN-RECV ${q?.synRecv ?? '-'}; load ${os.loadavg()[0].toFixed(1)}`);
      };
      const progress = await clients.allReady(k + 1, () => (probe(), live())).catch(async (err: Error) => {
        // A storm that never converged: where its connects were waiting is the result.
        printListen(await sampler.stop(), counterDelta(tcp0, await tcpExtCounters()), t0);
        throw err;
      });
      const tAll = Date.now();
      const cpu = await serverCpu(server.child);
      const tcp = counterDelta(tcp0, await tcpExtCounters());
      const listen = await sampler.stop();
      const readyAt = progress.flatMap((p) => p.readyAt!).map((t) => (t - t0) / 1000).sort((a, b) => a - b);
      healthz.sort((a, b) => a - b);
      const traces = progress.flatMap((p) => p.attempts!.map((attempts, i) => ({ attempts, droppedAt: p.droppedAt![i], connectedAt: p.connectedAt![i], desiredAt: p.desiredAt![i] })));
      const marks = { t0, stopped: tStopped, ready: ready.at };
      const timeline = buildTimeline(traces, marks);
      console.log(`\n${n} devices, agents' probeMaxMs ${schedule.probeMaxMs}, connect timeout ${schedule.connectTimeoutMs} ms:`);
      printTimeline(timeline, marks, n);
      printListen(listen, tcp, t0);
      results.push({
        n,
        ...schedule,
        allBackS: (tAll - t0) / 1000,
        sinceReadyS: (tAll - ready.at) / 1000,
        p50S: percentile(readyAt, 50),
        p90S: percentile(readyAt, 90),
        firstS: readyAt[0],
        serverCpuPerDeviceMs: (cpu * 1000) / n,
        clientCpuS: progress.reduce((s, p) => s + (p.cpuSeconds ?? 0), 0),
        healthzMaxMs: healthz.at(-1) ?? NaN,
        healthzP95Ms: percentile(healthz, 95),
        stopS: (tStopped - t0) / 1000,
        startS: (ready.at - tStopped) / 1000,
        load: `${loadBefore.toFixed(1)}→${os.loadavg()[0].toFixed(1)}`,
        timeline,
        tcp,
        listen,
      });
    }
    return results;
  } finally {
    await clients.kill();
    // A clean stop (a CPU profile is written on exit), SIGKILL if it does not come.
    const exited = new Promise((r) => server.child.once('exit', r));
    server.child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
    server.child.kill('SIGKILL');
    await rm(fleet.dir, { recursive: true, force: true });
  }
}

/** Per second from SIGTERM: the largest accept queue and SYN-RECV count seen, then the TcpExt deltas. */
function printListen(samples: QueueSample[], tcp: Counters, t0: number): void {
  const perS = new Map<number, { accept: number; syn: number; backlog: number }>();
  for (const s of samples) {
    const k = Math.floor((s.at - t0) / 1000);
    const m = perS.get(k) ?? { accept: 0, syn: 0, backlog: s.backlog };
    perS.set(k, { accept: Math.max(m.accept, s.acceptQueue), syn: Math.max(m.syn, s.synRecv), backlog: s.backlog });
  }
  const busy = [...perS].filter(([, m]) => m.accept > 0 || m.syn > 0);
  console.log(`listen queue, max per second (accept queue/backlog, SYN-RECV): ${busy.map(([k, m]) => `${k}s ${m.accept}/${m.backlog},${m.syn}`).join('  ') || 'always empty'}`);
  console.log(`TcpExt (machine-wide) during the storm: ${Object.entries(tcp).map(([k, v]) => `${k} ${v}`).join(', ')}`);
}

/** `base`: the scrypt-hash storm; `prev`: the same fleet's restart with the earlier reconnect schedule. */
function stormRows(r: StormResult, label: string, base?: StormResult, prev?: StormResult): BenchRow[] {
  const lost = r.timeline.buckets.reduce((n, b) => n + b.lost, 0);
  const note = `${lost} attempts lost to the connect timeout; spread: first ${r.firstS.toFixed(1)} s, p50 ${r.p50S.toFixed(1)} s, p90 ${r.p90S.toFixed(1)} s; /healthz p95 ${r.healthzP95Ms.toFixed(0)} ms, max ${r.healthzMaxMs.toFixed(0)} ms; load avg ${r.load}`;
  const vs = base
    ? { baseline: `scrypt hashes, ${base.n} devices`, baselineValue: base.allBackS, ratio: r.allBackS / base.allBackS }
    : prev
      ? { baseline: `connect timeout ${prev.connectTimeoutMs / 1000} s, same fleet`, baselineValue: prev.allBackS, ratio: r.allBackS / prev.allBackS }
      : {};
  const vsReady = prev ? { baseline: `connect timeout ${prev.connectTimeoutMs / 1000} s, same fleet`, baselineValue: prev.sinceReadyS, ratio: r.sinceReadyS / prev.sinceReadyS } : {};
  return [
    { benchmark: `${label}: all ${r.n} back with desired state, from SIGTERM`, value: r.allBackS, unit: 's', ...vs, note },
    { benchmark: `${label}: … from the new process ready`, value: r.sinceReadyS, unit: 's', ...vsReady, note: `stop took ${r.stopS.toFixed(1)} s, start (spawn → /healthz) ${r.startS.toFixed(1)} s` },
    {
      benchmark: `${label}: server CPU per reconnected device`,
      value: r.serverCpuPerDeviceMs,
      unit: 'ms',
      ...(base ? { baseline: 'scrypt hashes', baselineValue: base.serverCpuPerDeviceMs, ratio: r.serverCpuPerDeviceMs / base.serverCpuPerDeviceMs } : {}),
      note: `the compiled server process from spawn (loading included); the simulated devices used ${r.clientCpuS.toFixed(1)} CPU s in the storm (${((r.clientCpuS * 1000) / r.n).toFixed(2)} ms per device)`,
    },
  ];
}

async function credentialRows(): Promise<BenchRow[]> {
  const secret = randomSecret('fld');
  const fast = hashDeviceSecret(secret);
  const slow = await scryptHash(secret);
  const f = await timeMany(2000, () => verifyDeviceSecret(secret, fast));
  const s = await timeMany(20, () => verifyDeviceSecret(secret, slow));
  const fastUs = percentile(f, 50) * 1000;
  const slowUs = percentile(s, 50) * 1000;
  return [
    { benchmark: 'credential check p50 (sha256 + timingSafeEqual)', value: fastUs, unit: 'µs', baseline: 'scrypt N=16384 verify p50', baselineValue: slowUs, ratio: fastUs / slowUs, note: `p99 ${(percentile(f, 99) * 1000).toFixed(1)} µs` },
  ];
}

/** Presence for N connects: one UPDATE transaction each (as before) vs the batched writer. */
async function presenceRows(n: number): Promise<BenchRow[]> {
  const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-presence-bench-'));
  const plane = new ControlPlane({ ...loadServerConfig({ FLOTILLA_DATA_DIR: dir }), httpHost: '127.0.0.1', httpPort: 0, mqttHost: '127.0.0.1', mqttPort: 0 }, createLogger('silent'));
  await plane.start();
  try {
    const token = await createEnrollToken(plane.db, { labels: {}, autoApprove: true, actor: 'bench' });
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push((await enrollDevice(plane.db, { token: token.token, facts: FACTS })).deviceId);
    let t = performance.now();
    for (const id of ids) await plane.db.update(devices).set({ online: true, lastSeen: new Date().toISOString() }).where(eq(devices.id, id));
    const each = performance.now() - t;
    const writer = new DeviceStateWriter({ db: plane.db, logger: pino({ level: 'silent' }), flushMs: 250 });
    t = performance.now();
    for (const id of ids) writer.presence(id, false);
    await writer.stop();
    const batched = performance.now() - t;
    const online = await plane.db.$count(devices, eq(devices.online, true));
    if (online !== 0) throw new Error(`batched presence left ${online} devices online`);
    return [{ benchmark: `presence for ${n} connects, batched writer`, value: batched, unit: 'ms', baseline: 'one UPDATE per connect', baselineValue: each, ratio: batched / each }];
  } finally {
    await plane.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export async function runReconnectBench(): Promise<BenchRow[]> {
  const sizes = (process.env.BENCH_RECONNECT_SIZES ?? '1000,10000').split(',').map(Number);
  const baseN = Number(process.env.BENCH_RECONNECT_BASELINE ?? 1000);
  const rows: BenchRow[] = [...(await credentialRows()), ...(await presenceRows(Math.min(2000, Math.max(...sizes))))];
  console.log(`storm baseline: ${baseN} devices with scrypt hashes …`);
  const [base] = baseN > 0 ? await storm(baseN, true, [TODAY]) : [];
  if (base) rows.push(...stormRows(base, 'baseline (scrypt hashes, migrated during the storm)'));
  if (base) console.log(JSON.stringify({ ...base, timeline: undefined, listen: undefined }));
  for (const n of sizes) {
    console.log(`storm: ${n} devices …`);
    // The earlier schedule (a 10 s connect timeout), then today's, on the same fleet.
    const withOld = process.env.BENCH_RECONNECT_OLD_SCHEDULE !== '0';
    const results = await storm(n, false, withOld ? [EARLIER, TODAY] : [TODAY]);
    const [old, r] = withOld ? results : [undefined, results[0]];
    if (old) rows.push(...stormRows(old, `sha256, connect timeout ${old.connectTimeoutMs / 1000} s`, base && n === base.n ? base : undefined));
    rows.push(...stormRows(r, `sha256, connect timeout ${r.connectTimeoutMs / 1000} s`, old ? undefined : base && n === base.n ? base : undefined, old));
    for (const x of results) console.log(JSON.stringify({ ...x, timeline: undefined, listen: undefined }));
    // The per-second timelines behind the rows (bench/results/reconnect.json has the rows only).
    await mkdir(path.join(import.meta.dirname, 'results'), { recursive: true });
    const file = path.join(import.meta.dirname, 'results', `reconnect-timeline-${n}.json`);
    await writeFile(file, JSON.stringify({ at: new Date().toISOString(), storms: results }, null, 2));
  }
  printTable(`Reconnect storm after a control-plane restart (${os.cpus().length} cores, load avg at end ${os.loadavg()[0].toFixed(1)})`, rows);
  return rows;
}
