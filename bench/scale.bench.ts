// Fleet scale (issue 16), with the fleet simulator (simulator/) against one control plane, each in its
// own process, on the embedded broker and on Mosquitto 2 (its own process, dynamic security, the
// server a client of it):
// - devices held: N simulated devices, telemetry every 10 s (no requests: --rows 0); connected count,
//   messages/s acknowledged and stored, server RSS per device (RSS with the fleet minus RSS before it,
//   over N; Mosquitto's too), file descriptors in use against the process limit, and what broke first
//   if not every device got connected;
// - (embedded broker) desired-state fan-out: one deployment to every held device (up to 10,000), time
//   until every device's agent verified its signed manifest (seen in the simulators, polled every 100 ms);
// - (embedded broker) a full staged rollout to 1,000 of them (stages 1/10/50/100 %, no bake): per stage,
//   time until its last device is active (bench/staged-rollout.ts, shared with the shadow bench);
// - drift evaluation for 10,000 devices × 50 features: merging 10,000 windows and evaluating, against
//   parsing those windows' JSON (what reading them costs at least).
// Sizes: BENCH_SCALE_DEVICES (default 2000) on each broker of BENCH_SCALE_BROKERS (default
// "embedded,mosquitto"); BENCH_SCALE_BIG=1 holds 19,000 instead (the per-process fd limit here is
// 20,000: each device is one socket in the server, or in Mosquitto). On the embedded broker the 19,000
// are bulk-provisioned (bench/bulk-provision.ts: approved rows and identity files, no enrollment) and
// only held — two steady-state samples, no deployment (BENCH_SCALE_BULK=1: the same at BENCH_SCALE_DEVICES). At most 5,000 devices per simulator process,
// every wait with a timeout; only 127.0.0.1.
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../agent/testing/harness.ts';
import { createKeyList, signKeyList } from '../firmware-bundles/key-list.ts';
import { generateKeyPair } from '../firmware-bundles/keys.ts';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import { evaluateDrift } from '../protocol/drift/index.ts';
import { addRow, createFeatureSetSketch, mergeAllFeatureSetSketches } from '../protocol/sketch/feature-set-sketch.ts';
import { computeReferenceProfile } from '../protocol/sketch/reference-profile.ts';
import { gaussian, mulberry32 } from '../protocol/sketch/random.ts';
import { ControlPlane } from '../server/control-plane.ts';
import { loadServerConfig } from '../server/env.ts';
import { createLogger } from '../server/logger.ts';
import { generateRows, rowsToCsv } from '../test/helpers/device-stats.ts';
import { gemmModel } from '../test/helpers/models.ts';
import { printTable, type BenchRow } from './lib.ts';
import { SimulatorProcess, type SimulatorProgress } from '../simulator/simulator-process.ts';
import { mosquittoSkip, startMosquitto, type TestMosquitto } from '../test/helpers/mosquitto.ts';
import { measureStagedRollout } from './staged-rollout.ts';
import { type BulkGroup, bulkProvisionMosquitto } from './mosquitto-bulk.ts';
import { mosquittoEnrollRows } from './mosquitto-enroll-rate.ts';
import { bulkProvision } from './bulk-provision.ts';

const BIG = process.env.BENCH_SCALE_BIG === '1';
const HELD = BIG ? 19_000 : Number(process.env.BENCH_SCALE_DEVICES ?? 2000);
const BROKERS = (process.env.BENCH_SCALE_BROKERS ?? 'embedded,mosquitto').split(',').map((b) => b.trim()) as Array<'embedded' | 'mosquitto'>;
const PER_PROCESS = 5_000;
const FANOUT = Math.min(HELD, 10_000);
const ROLLOUT = Math.min(HELD, 1_000);
const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo', 'bundle.json');
const CONNECT_TIMEOUT_MS = 15 * 60_000;
const STEADY_MS = 40_000;
// Mosquitto: held devices provisioned in bulk instead of enrolling (bench/mosquitto-bulk.ts), and
// enrollment measured on its own (bench/mosquitto-enroll-rate.ts, BENCH_SCALE_ENROLL devices, 0: off).
const MOSQ_BULK = process.env.BENCH_SCALE_MOSQ_BULK !== '0';
const MOSQ_ENROLL = Number(process.env.BENCH_SCALE_ENROLL ?? 400);

const sum = (sims: SimulatorProcess[], k: keyof SimulatorProgress) => sims.reduce((s, x) => s + (x.last?.[k] ?? 0), 0);

async function until(what: string, fn: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return true;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  console.error(`scale bench: gave up waiting for ${what} after ${timeoutMs} ms`);
  return false;
}

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

async function fdsInUse(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

async function metric(url: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^${name}\\{${labels}\\} ([0-9.e+]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** Data dir with a model (and its reference), keys, cohorts, two bundles and enrollment tokens; an admin API token. */
async function setup(dir: string, env: Record<string, string>, provision?: (plane: ControlPlane, root: { publicKey: string }) => Promise<void>) {
  const plane = new ControlPlane(loadServerConfig(env), createLogger('silent'));
  await plane.start();
  const api = async (method: string, p: string, body?: unknown, raw?: BodyInit, headers: Record<string, string> = {}) => {
    const res = await fetch(plane.httpUrl + p, { method, headers: { authorization: `Bearer ${plane.adminToken}`, ...(body ? { 'content-type': 'application/json' } : {}), ...headers }, body: raw ?? (body ? JSON.stringify(body) : undefined) });
    const json = await res.json();
    if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  await api('POST', '/api/v1/models/scale/versions', undefined, gemmModel({ seed: 1 }) as BodyInit);
  await api('POST', '/api/v1/models/scale/versions', undefined, gemmModel({ seed: 2 }) as BodyInit);
  for (const v of [1, 2]) await api('POST', `/api/v1/models/scale/versions/${v}/reference`, undefined, rowsToCsv(generateRows(2000, v)), { 'content-type': 'text/csv' });
  const root = generateKeyPair();
  const release = await api('POST', '/api/v1/keys/release');
  await api('PUT', '/api/v1/keys/keylist', signKeyList(createKeyList({ version: 1, root, keys: [release], threshold: 1, expiresAt: new Date(Date.now() + 86400e3) }), root.privateKeyPem));
  await api('POST', '/api/v1/cohorts', { name: 'scale', selector: 'fleet=scale' });
  await api('POST', '/api/v1/cohorts', { name: 'ring', selector: 'ring=r1' });
  const { definition, labels } = await loadBundleDefinition(BUNDLE_DEF);
  const b1 = await api('POST', '/api/v1/bundles', { model: 'scale@1', definition, labels });
  const b2 = await api('POST', '/api/v1/bundles', { model: 'scale@2', definition, labels });
  const ring = (await api('POST', '/api/v1/enroll-tokens', { labels: { fleet: 'scale', ring: 'r1' }, maxUses: ROLLOUT })).token as string;
  const rest = (await api('POST', '/api/v1/enroll-tokens', { labels: { fleet: 'scale' } })).token as string;
  const admin = (await api('POST', '/api/v1/tokens', { name: 'scale-bench', role: 'admin' })).token as string;
  await provision?.(plane, root);
  await plane.stop();
  return { bundle1: b1.id as string, bundle2: b2.id as string, ringToken: ring, token: rest, admin, rootPublicKey: root.publicKey };
}

function driftRows(): BenchRow[] {
  const FEATURES = 50;
  const N = 10_000;
  const g = gaussian(mulberry32(7));
  const u = mulberry32(8);
  const names = Array.from({ length: FEATURES }, (_, i) => `x${i}`);
  const row = () => Object.fromEntries(names.map((n, i) => [n, i + g() * (1 + (i % 5))]));
  const refRows = Array.from({ length: 5000 }, () => ({ ...row(), p: Math.floor(u() * 3), c: u() }));
  const profile = computeReferenceProfile(refRows, { features: names.map((name) => ({ name, kind: 'numeric' as const })), outputs: { task: 'classification', numClasses: 3, predictedClassColumn: 'p', confidenceColumn: 'c' } });
  const distinct = Array.from({ length: 100 }, () => {
    const s = createFeatureSetSketch(profile.layout);
    for (let i = 0; i < 20; i++) addRow(s, row(), { predictedClass: Math.floor(u() * 3), confidence: u() });
    return s;
  });
  const windows = Array.from({ length: N }, (_, i) => distinct[i % distinct.length]);
  const json = windows.map((w) => JSON.stringify(w));
  const parse: number[] = [];
  const work: number[] = [];
  for (let rep = 0; rep < 3; rep++) {
    let t = performance.now();
    for (const j of json) JSON.parse(j);
    parse.push(performance.now() - t);
    t = performance.now();
    evaluateDrift(profile.sketch, mergeAllFeatureSetSketches(windows), {});
    work.push(performance.now() - t);
  }
  const best = (xs: number[]) => Math.min(...xs);
  return [{ benchmark: `drift: merge ${N} device windows (${FEATURES} features, 20 bins) + evaluate`, value: best(work), unit: 'ms', baseline: `JSON.parse of the ${N} windows`, baselineValue: best(parse), ratio: best(work) / best(parse), note: 'best of 3; target < 1000 ms' }];
}

/** The simulator processes' devices as heldRows() starts them, for provisioning them in bulk. */
function mosquittoGroups(simRoot: string) {
  const groups: BulkGroup[] = [];
  for (let left = HELD, i = 0; left > 0; i++) {
    const n = i === 0 ? Math.min(ROLLOUT, left) : Math.min(PER_PROCESS, left);
    groups.push({ dir: path.join(simRoot, `sim${i}`), namePrefix: `scale${i}-`, n, labels: i === 0 ? { fleet: 'scale', ring: 'r1' } : { fleet: 'scale' } });
    left -= n;
  }
  return groups;
}

/**
 * Why updates failed or were rolled back, from what the devices reported (their `lastError`), grouped with device-specific
 * parts (paths, ids, numbers) masked: "DOWNLOAD_FAILED …: gave up after 6 attempts: connect ECONNRESET ×731".
 */
async function failureCauses(api: (method: string, p: string) => Promise<any>): Promise<string> {
  type Row = { updateState: string | null; reported: { lastError?: { code: string; message: string } | null } | null };
  const devices: Row[] = [];
  for (let offset = 0; ; offset += 1000) {
    const page = ((await api('GET', `/api/v1/devices?limit=1000&offset=${offset}`)) as { devices: Row[] }).devices;
    devices.push(...page);
    if (page.length < 1000) break;
  }
  const causes = new Map<string, number>();
  for (const d of devices) {
    const e = d.reported?.lastError;
    if ((d.updateState !== 'failed' && d.updateState !== 'rolled_back') || !e) continue;
    const key = `${e.code}: ${e.message.replace(/[0-9a-f]{16,}/g, '…').replace(/\d+/g, 'N')}`;
    causes.set(key, (causes.get(key) ?? 0) + 1);
  }
  return [...causes].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([k, n]) => `${k} ×${n}`).join('; ') || 'none';
}

/** CPU time (user + system) of a process so far, ms. */
async function cpuMs(pid: number): Promise<number> {
  const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (100/s)
}

/** The artifact route's requests by status and their total seconds, from /metrics. */
async function artifactRequests(url: string): Promise<{ byStatus: Map<string, number>; seconds: number; count: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const byStatus = new Map<string, number>();
  let seconds = 0;
  let count = 0;
  for (const line of text.split('\n')) {
    if (!line.includes('route="/artifacts/')) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    const status = /^flotilla_http_requests_total\{.*status="(\d+)"/.exec(line)?.[1];
    if (status) byStatus.set(status, (byStatus.get(status) ?? 0) + v);
    else if (line.startsWith('flotilla_http_request_duration_seconds_sum')) seconds += v;
    else if (line.startsWith('flotilla_http_request_duration_seconds_count')) count += v;
  }
  return { byStatus, seconds, count };
}

/** The kernel's count of connections dropped because a listen queue was full (all listeners of the host). */
async function listenOverflows(): Promise<number> {
  const [keys, values] = (await readFile('/proc/net/netstat', 'utf8')).split('\n').filter((l) => l.startsWith('TcpExt:')).map((l) => l.split(/\s+/));
  return Number(values[keys.indexOf('ListenOverflows')] ?? NaN);
}

/** What a deployment cost: artifact requests (by status, mean time), server and simulator CPU, listen-queue overflows. */
async function deploymentLoad(url: string, serverPid: number, sims: SimulatorProcess[]) {
  const [a, cpu, overflows] = [await artifactRequests(url), await cpuMs(serverPid), await listenOverflows()];
  const simCpu = sum(sims, 'cpuMs');
  const t = performance.now();
  return async () => {
    const b = await artifactRequests(url);
    const secs = (performance.now() - t) / 1000;
    const statuses = [...b.byStatus].map(([k, v]) => `${k}: ${v - (a.byStatus.get(k) ?? 0)}`).join(', ');
    const n = b.count - a.count;
    return `artifact requests ${statuses || 'none'}, mean ${n ? (((b.seconds - a.seconds) / n) * 1000).toFixed(0) : '-'} ms; CPU over ${secs.toFixed(0)} s: server ${(((await cpuMs(serverPid)) - cpu) / 1000 / secs * 100).toFixed(0)} %, simulators ${((sum(sims, 'cpuMs') - simCpu) / 1000 / secs * 100).toFixed(0)} %; listen-queue overflows on the host: ${(await listenOverflows()) - overflows}`;
  };
}

/** One fleet held on one broker; on the embedded broker also the fan-out and the staged rollout. */
async function heldRows(broker: 'embedded' | 'mosquitto', push: (r: BenchRow) => void): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-scale-bench-'));
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  let mosq: TestMosquitto | undefined;
  if (broker === 'mosquitto') mosq = await startMosquitto();
  const env: Record<string, string> = {
    FLOTILLA_DATA_DIR: path.join(dir, 'server'),
    FLOTILLA_HTTP_HOST: '127.0.0.1',
    FLOTILLA_HTTP_PORT: String(httpPort),
    FLOTILLA_MQTT_HOST: '127.0.0.1',
    FLOTILLA_MQTT_PORT: String(mqttPort),
    FLOTILLA_LOG_LEVEL: 'error',
    FLOTILLA_SCHEDULER_TICK_MS: '500',
    FLOTILLA_DRIFT_CRON: 'off',
    ...(mosq ? { FLOTILLA_MQTT_URL: mosq.url, FLOTILLA_MQTT_ADMIN_USERNAME: mosq.admin.username, FLOTILLA_MQTT_ADMIN_PASSWORD: mosq.admin.password } : {}),
  };
  // The simulated devices' state on tmpfs where there is one: every telemetry message goes through each
  // agent's outbox (file, fsync, rename, directory fsync), and thousands of devices sharing one disk
  // would measure that disk, not the server.
  const simRoot = existsSync('/dev/shm') ? await mkdtemp('/dev/shm/flotilla-scale-sim-') : dir;
  const url = `http://127.0.0.1:${httpPort}`;
  // Process 0 holds the rollout ring (its devices carry ring=r1), the rest only fleet=scale.
  const layout: number[] = [];
  for (let left = HELD, i = 0; left > 0; i++) left -= layout[i] = i === 0 ? Math.min(ROLLOUT, left) : Math.min(PER_PROCESS, left);
  const embeddedBulk = (BIG || process.env.BENCH_SCALE_BULK === '1') && broker === 'embedded';
  let provisionS = 0;
  const s = await setup(dir, env, embeddedBulk ? async (plane, root) => {
    const t = performance.now();
    for (const [i, n] of layout.entries()) {
      await bulkProvision({ db: plane.db, n, namePrefix: `scale${i}-`, dataDir: path.join(simRoot, `sim${i}`), labels: i === 0 ? { fleet: 'scale', ring: 'r1' } : { fleet: 'scale' }, serverUrl: url, mqttUrl: `mqtt://127.0.0.1:${mqttPort}`, rootPublicKey: root.publicKey });
    }
    provisionS = (performance.now() - t) / 1000;
  } : undefined);
  const bulk = mosq && MOSQ_BULK ? await bulkProvisionMosquitto({ mosq, dbUrl: loadServerConfig(env).dbUrl, serverUrl: url, rootPublicKey: s.rootPublicKey, groups: mosquittoGroups(simRoot) }) : undefined;
  const api = async (method: string, p: string, body?: unknown) => {
    const res = await fetch(url + p, { method, headers: { authorization: `Bearer ${s.admin}`, 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
    const json = await res.json();
    if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const server = fork(path.join(import.meta.dirname, 'reconnect-server.ts'), { env: { ...process.env, ...env }, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const serverExit = new Promise<number | null>((r) => server.once('exit', (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    server.on('message', (m: { type: string }) => m.type === 'ready' && resolve());
    server.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  const sims: SimulatorProcess[] = [];
  const on = broker === 'mosquitto' ? 'Mosquitto' : 'embedded broker';
  const mosqPid = mosq?.pid;
  let tell: NodeJS.Timeout | undefined;
  try {
    await new Promise((r) => setTimeout(r, 3000)); // settle after start
    const rssBefore = await rssBytes(server.pid!);
    const brokerRssBefore = mosqPid ? await rssBytes(mosqPid) : 0;
    const common = ['--server', url, '--trust-root', s.rootPublicKey, '--telemetry', '10s', '--stats', '60s', '--rows', '0', '--probation', '1s', '--concurrency', '25', '--log-level', 'fatal'];
    for (const [i, n] of layout.entries()) {
      sims.push(new SimulatorProcess(['--progress-every', bulk || embeddedBulk ? '1s' : '100ms', '--devices', String(n), '--name-prefix', `scale${i}-`, '--data-dir', path.join(simRoot, `sim${i}`), '--enroll-token', i === 0 ? s.ringToken : s.token, ...common]));
    }
    const t0 = performance.now();
    tell = setInterval(() => console.error(`scale (${on}): ${sum(sims, 'started')} started, ${sum(sims, 'connected')} connected, ${sum(sims, 'accepted')} verified, ${sum(sims, 'active')} active, ${sum(sims, 'failed')} failed`), 15_000);
    tell.unref();
    const allConnected = await until('every device connected', () => sum(sims, 'connected') >= HELD, CONNECT_TIMEOUT_MS, 1000);
    const connectS = (performance.now() - t0) / 1000;
    const connected = sum(sims, 'connected');
    const broke = allConnected ? '' : `; ${connected} of ${HELD} connected: ${server.exitCode !== null ? `server exited ${server.exitCode}` : sims.map((x) => x.stderr.split('\n').find((l) => l.trim())).filter(Boolean)[0] ?? 'no error reported'}`;
    // Steady state: telemetry every 10 s from every device.
    const stored0 = await metric(url, 'flotilla_ingest_stored_total', 'channel="telemetry"');
    const pub0 = sum(sims, 'published');
    const ts = performance.now();
    await new Promise((r) => setTimeout(r, STEADY_MS));
    const secs = (performance.now() - ts) / 1000;
    const storedRate = ((await metric(url, 'flotilla_ingest_stored_total', 'channel="telemetry"')) - stored0) / secs;
    const pubRate = (sum(sims, 'published') - pub0) / secs;
    const rssWith = await rssBytes(server.pid!);
    const perDevice = (rssWith - rssBefore) / Math.max(1, connected);
    const fds = await fdsInUse(server.pid!);
    const brokerFds = mosqPid ? await fdsInUse(mosqPid) : 0;
    push({ benchmark: `devices held on the ${on}, telemetry every 10 s (${sims.length} simulator processes)`, value: connected, unit: 'devices', baseline: 'devices started', baselineValue: HELD, ratio: connected / HELD, note: `all connected after ${connectS.toFixed(0)} s (${embeddedBulk ? `bulk-provisioned in ${provisionS.toFixed(0)} s before, not enrolled` : bulk ? `bulk-provisioned in ${(bulk.ms / 1000).toFixed(0)} s before, no enrollment` : 'enrollment included'}); fds in use: server ${fds}${mosqPid ? `, Mosquitto ${brokerFds}` : ''} of 20000${broke}` });
    push({ benchmark: `messages/s acknowledged by the ${on} (all kinds)`, value: pubRate, unit: 'msg/s', note: `telemetry stored by ingest: ${storedRate.toFixed(0)}/s (expected ≈ ${(connected / 10).toFixed(0)}/s)` });
    push({ benchmark: `server RSS per held device (${on})`, value: perDevice / 1024, unit: 'KB', baseline: 'server RSS before the fleet', baselineValue: rssBefore / 1024 ** 2, note: `RSS ${(rssWith / 1024 ** 2).toFixed(0)} MB with the fleet (baseline value in MB); target ≤ 100 KB/device` });
    if (mosqPid) {
      const brokerWith = await rssBytes(mosqPid);
      push({ benchmark: 'Mosquitto RSS per held device', value: (brokerWith - brokerRssBefore) / Math.max(1, connected) / 1024, unit: 'KB', baseline: 'Mosquitto RSS before the fleet', baselineValue: brokerRssBefore / 1024 ** 2, note: `RSS ${(brokerWith / 1024 ** 2).toFixed(0)} MB with the fleet (baseline value in MB); dynamic security: one client and one role per device${bulk ? `; loaded before the baseline: their dynamic-security state alone ${((bulk.brokerRssLoaded - bulk.brokerRssEmpty) / bulk.devices / 1024).toFixed(1)} KB/device, with the fleet over an empty broker ${((brokerWith - bulk.brokerRssEmpty) / Math.max(1, connected) / 1024).toFixed(1)} KB/device` : ''}` });
    }
    if (broker === 'mosquitto') return;
    if (embeddedBulk) {
      // The 19,000 rows are about holding the fleet: a second sample of the steady state shows whether it stays.
      await new Promise((r) => setTimeout(r, STEADY_MS));
      push({ benchmark: `devices still connected ${STEADY_MS / 1000} s later (${on})`, value: sum(sims, 'connected'), unit: 'devices', baseline: 'devices started', baselineValue: HELD, ratio: sum(sims, 'connected') / HELD, note: `server RSS ${((await rssBytes(server.pid!)) / 1024 ** 2).toFixed(0)} MB, fds ${await fdsInUse(server.pid!)}` });
      return;
    }

    // Fan-out: one deployment to every device of the fleet cohort.
    const load = await deploymentLoad(url, server.pid!, sims);
    let t = performance.now();
    await api('POST', '/api/v1/deployments', { bundle: s.bundle1, cohort: 'scale' });
    const fanned = await until('every device verified its manifest', () => sum(sims, 'accepted') >= connected, 5 * 60_000);
    const fanoutS = (performance.now() - t) / 1000;
    push({ benchmark: `desired-state fan-out to ${connected} devices: every agent verified its signed manifest`, value: fanoutS, unit: 's', note: `${fanned ? '' : `only ${sum(sims, 'accepted')} verified; `}deployment request to the last verification; target < 5 s` });
    t = performance.now();
    const settled = await until('every device active', () => sum(sims, 'active') + sum(sims, 'failed') >= connected, 10 * 60_000, 500);
    const deployS = fanoutS + (performance.now() - t) / 1000;
    const failedN = sum(sims, 'failed');
    push({ benchmark: `the same deployment: time until every device is active (download, smoke test, 1 s probation)`, value: deployS, unit: 's', note: settled ? `${failedN} failed` : `only ${sum(sims, 'active')} active` });
    console.error(`scale: the deployment's load: ${await load()}`);
    if (failedN) console.error(`scale: why updates failed: ${await failureCauses(api)}`);

    // A staged rollout of version 2 to the 1,000-device ring, per stage (no bake). Failed updates are
    // counted in the rows, not allowed to pause it: the stages' pace is what is measured.
    const ringN = sims[0].last?.connected ?? 0;
    const rolloutLoad = await deploymentLoad(url, server.pid!, sims);
    for (const r of await measureStagedRollout({
      api,
      bundle: s.bundle2,
      cohort: 'ring',
      stages: [0.01, 0.1, 0.5, 1],
      devices: ringN,
      baseline: { label: `direct deployment to all ${connected}`, seconds: deployS },
      body: { gates: { maxLatencyRatio: null, maxFailedUpdates: Math.max(1, ringN), minUpdateSuccessRatio: 0 } },
      tickNote: 'ticks every 500 ms, polled every 250 ms',
    })) push(r);
    console.error(`scale: the staged rollout's load: ${await rolloutLoad()}`);
    console.error(`scale: why updates failed (deployment and rollout): ${await failureCauses(api)}`);
  } catch (err) {
    // What broke is a result too: keep the rows measured so far.
    push({ benchmark: `run on the ${on} cut short`, value: NaN, unit: '-', note: (err as Error).message.slice(0, 200) });
  } finally {
    clearInterval(tell);
    await Promise.all(sims.map((x) => x.stop()));
    server.kill('SIGTERM');
    // A stop that hangs (seen after 2,000-device deployments) must not hang the bench: say so, then kill.
    const stopped = await Promise.race([serverExit.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 60_000).unref())]);
    if (!stopped) {
      console.error(`scale (${on}): the server did not stop within 60 s of SIGTERM; killed`);
      server.kill('SIGKILL');
      await serverExit;
    }
    await mosq?.stop();
    await rm(dir, { recursive: true, force: true });
    await rm(simRoot, { recursive: true, force: true });
  }
}

export async function runScaleBench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  // Each row is printed as soon as it is measured: a run on a loaded machine may be cut short.
  const push = (r: BenchRow) => {
    rows.push(r);
    console.error(`scale: ${r.benchmark}: ${r.value.toFixed(2)} ${r.unit}${r.note ? ` (${r.note})` : ''}`);
  };
  for (const broker of BROKERS) {
    const skip = broker === 'mosquitto' ? mosquittoSkip() : false;
    if (skip) console.log(`# Mosquitto rows skipped: ${skip}`);
    else {
      if (broker === 'mosquitto' && MOSQ_ENROLL > 0) {
        const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-enroll-bench-'));
        try {
          for (const r of await mosquittoEnrollRows(MOSQ_ENROLL, dir)) push(r);
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      }
      await heldRows(broker, push);
    }
  }
  for (const r of driftRows()) push(r);
  printTable(`Fleet scale (simulated devices: ${HELD} per broker)`, rows);
  return rows;
}
