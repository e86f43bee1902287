// Monitoring benchmarks:
// - ingest throughput of `stats` and `telemetry` from real MQTT device clients into the database
//   (publish → stored, batched transactions, rollups), against raw MQTT publish → receive through a
//   bare aedes broker with no database, same payloads, same clients count, same run;
// - the ingest path alone (validation + batched writes, no MQTT);
// - drift evaluation for 10,000 devices × 50 features: merging 10,000 device windows and evaluating,
//   against parsing those windows' JSON (what reading them would cost at least); and GET /drift on an
//   hour of per-minute cohort rollups of such a fleet, which is what the server actually merges.
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { createKeyList, signKeyList } from '../firmware-bundles/key-list.ts';
import { generateKeyPair } from '../firmware-bundles/keys.ts';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import { evaluateDrift } from '../protocol/drift/index.ts';
import { addRow, createFeatureSetSketch, mergeAllFeatureSetSketches, type FeatureSetSketch, type SketchLayout } from '../protocol/sketch/feature-set-sketch.ts';
import { computeReferenceProfile } from '../protocol/sketch/reference-profile.ts';
import { gaussian, mulberry32 } from '../protocol/sketch/random.ts';
import { statsRollups } from '../server/db/schema.ts';
import { bucketStart } from '../server/ingest/buckets.ts';
import { loadServerConfig } from '../server/env.ts';
import { startControlPlane, type TestPlane } from '../test/helpers/control-plane.ts';
import { generateRows, rowsToCsv, sketchOf, statsMessage, telemetryMessage } from '../test/helpers/device-stats.ts';
import { gemmModel } from '../test/helpers/models.ts';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { DynsecAdmin } from '../server/broker/dynsec-admin.ts';
import { mosquittoSkip, startMosquitto, type TestMosquitto } from '../test/helpers/mosquitto.ts';
import { profiled } from './cpu-profile.ts';
import { publishersWhere, startPublishers, type PublisherClient, type Publishers } from './ingest-publishers.ts';
import { percentile, printTable, type BenchRow } from './lib.ts';
import type { StatsMessage } from '../protocol/messages/stats.ts';
import { toWireStats } from '../protocol/messages/stats-wire.ts';

const DEVICES = 20;
/** BENCH_INGEST_ONLY=embedded|mosquitto runs one broker's rows; `direct`, only the rows without MQTT (to iterate, or to profile one). */
const only = process.env.BENCH_INGEST_ONLY;
/** BENCH_INGEST_SYNCHRONOUS=full runs the server with FLOTILLA_DB_SYNCHRONOUS=full (to compare with the default, normal). */
const dbSynchronous = process.env.BENCH_INGEST_SYNCHRONOUS === 'full' ? 'full' : 'normal';
/** BENCH_INGEST_STATS_WIRE=json sends `stats` as agents before issue 16's wire change did (a sketch object) on the MQTT rows. */
const statsWire = process.env.BENCH_INGEST_STATS_WIRE === 'json' ? 'json' : 'base64';
/** A `stats` payload in the given wire form (protocol/messages/stats-wire.ts). */
const statsPayload = (m: StatsMessage, wire: 'json' | 'base64') => JSON.stringify(wire === 'json' ? m : toWireStats(m));
const STATS_PER_DEVICE = 250;
const TELEMETRY_PER_DEVICE = 500;
const BUNDLE_DEF = new URL('../firmware-bundles/tabular-demo/bundle.json', import.meta.url).pathname;
const FACTS = { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' };

async function waitFor(what: string, fn: () => Promise<boolean> | boolean, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function stored(cp: TestPlane, channel: string): Promise<number> {
  const m = await cp.plane.metrics.registry.getSingleMetric('flotilla_ingest_stored_total')!.get();
  return m.values.find((v) => v.labels.channel === channel)?.value ?? 0;
}

/** Ingest transactions so far and the seconds spent in them (flotilla_ingest_flush_seconds). */
async function flushes(cp: TestPlane): Promise<{ n: number; s: number }> {
  const m = await cp.plane.metrics.registry.getSingleMetric('flotilla_ingest_flush_seconds')!.get();
  const value = (suffix: string) => (m.values as Array<{ metricName?: string; value: number }>).find((v) => v.metricName?.endsWith(suffix))?.value ?? 0;
  return { n: value('_count'), s: value('_sum') };
}

/** Runs `fn` (an ingest row) and describes its transactions: how many, mean size, time inside them. */
async function withBatches<T>(cp: TestPlane, n: number, fn: () => Promise<T>): Promise<[T, string]> {
  const a = await flushes(cp);
  const r = await fn();
  const b = await flushes(cp);
  const count = b.n - a.n;
  return [r, `${count} transactions (≈ ${count ? Math.round(n / count) : 0} messages each, ${((b.s - a.s) * 1000).toFixed(0)} ms in them)`];
}

/**
 * Publishes every payload from the device clients (in their own process unless BENCH_INGEST_PUBLISHERS=inline)
 * and returns the rate at which `done` (delivered or stored, as the caller counts it) saw them all.
 */
async function timedPublish(pubs: Publishers, url: string, clients: PublisherClient[], channel: 'stats' | 'telemetry', payloads: string[][], done: () => Promise<boolean> | boolean, brokerPid?: number): Promise<number> {
  const total = payloads.reduce((s, p) => s + p.length, 0);
  await pubs.connect(url, clients);
  await pubs.load(channel, payloads);
  const t = performance.now();
  const cpu0 = process.cpuUsage();
  const broker0 = await processCpuUs(brokerPid);
  const published = pubs.go();
  await waitFor(`${channel}: all ${total} messages through`, done);
  const rate = total / ((performance.now() - t) / 1000);
  const cpu = process.cpuUsage(cpu0);
  lastCpuUs = (cpu.user + cpu.system + ((await processCpuUs(brokerPid)) - broker0)) / total;
  await published;
  await pubs.end();
  return rate;
}

/**
 * CPU of the bench's process per message over the last timedPublish: the broker and the server (or the
 * baseline's subscriber) — not the publishers, in their own process. Under a high load average the
 * rates mostly measure the scheduler; this ratio (baseline CPU per message / ingest CPU per message) is
 * the one the load does not move much.
 */
let lastCpuUs = NaN;

/** CPU µs (user + system) an external broker process has used so far (0 without one), from /proc. */
async function processCpuUs(pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return stat ? ((Number(fields[11]) + Number(fields[12])) / 100) * 1e6 : 0;
}
const cpuNote = (raw: number, ingest: number) => `CPU ${ingest.toFixed(0)} µs/msg vs ${raw.toFixed(0)} raw (ratio ${(raw / ingest).toFixed(2)})`;

/** Where the baseline runs: a bare aedes broker (default), or the given broker with credentials per client. */
interface RawBroker {
  url: string;
  /** An external broker's process: its CPU counts with the bench's own. */
  pid?: number;
  sub: mqtt.IClientOptions;
  pub: (id: string) => mqtt.IClientOptions;
}

/** Baseline: the same clients and payloads through a bare aedes broker (or `via`) to one subscriber, no database. */
async function rawMqtt(pubs: Publishers, channel: 'stats' | 'telemetry', ids: string[], payloads: string[][], via?: RawBroker): Promise<number> {
  const broker = via ? undefined : await Aedes.createBroker();
  const server = broker && createServer(broker.handle);
  if (server) await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = via?.url ?? `mqtt://127.0.0.1:${(server!.address() as AddressInfo).port}`;
  const sub = await mqtt.connectAsync(url, { clientId: 'bench-sub', ...via?.sub });
  let received = 0;
  sub.on('message', () => received++);
  await sub.subscribeAsync(`flotilla/v1/devices/+/${channel}`, { qos: 1 });
  const total = payloads.reduce((s, p) => s + p.length, 0);
  const rate = await timedPublish(pubs, url, ids.map((id) => ({ id, opts: via?.pub(id) ?? {} })), channel, payloads, () => received >= total, via?.pid);
  await sub.endAsync();
  if (broker) await new Promise<void>((r) => broker.close(() => r()));
  if (server) await new Promise<void>((r) => server.close(() => r()));
  return rate;
}

async function fleet(cp: TestPlane) {
  await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel() as BodyInit });
  const ref = await cp.api('POST', '/api/v1/models/tab/versions/1/reference', { body: rowsToCsv(generateRows(5000, 1)), headers: { 'content-type': 'text/csv' } });
  const layout = ref.body.layout as SketchLayout;
  const root = generateKeyPair();
  const release = (await cp.api('POST', '/api/v1/keys/release')).body;
  await cp.api('PUT', '/api/v1/keys/keylist', { json: signKeyList(createKeyList({ version: 1, root, keys: [release], threshold: 1, expiresAt: new Date(Date.now() + 86400e3) }), root.privateKeyPem) });
  await cp.api('POST', '/api/v1/cohorts', { json: { name: 'bench', selector: 'site=bench' } });
  const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'bench' } } })).body.token;
  const devices: Array<{ id: string; password: string }> = [];
  for (let i = 0; i < DEVICES; i++) {
    const r = (await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } })).body;
    devices.push({ id: r.deviceId, password: r.mqtt.password });
  }
  const { definition, labels } = await loadBundleDefinition(BUNDLE_DEF);
  const bundleId = (await cp.api('POST', '/api/v1/bundles', { json: { model: 'tab@1', definition, labels } })).body.id as string;
  await cp.api('POST', '/api/v1/deployments', { json: { bundle: bundleId, cohort: 'bench' } });
  const clients: PublisherClient[] = devices.map((d) => ({ id: d.id, opts: { username: d.id, password: d.password } }));
  return { layout, devices, clients, bundleId };
}

/** Distinct sketches per device (100 rows each), then one payload per window / report with its own seq and time. */
function payloadsFor(layout: SketchLayout, devices: Array<{ id: string }>, bundleId: string, now = Date.now()) {
  const model = { name: 'tab', version: 1 };
  // Distinct sketches per device (100 rows each), then one payload per window with its own seq and time.
  const sketches = devices.map((_, i) => sketchOf(layout, generateRows(100, 10 + i)));
  const statsPayloads = devices.map((d, i) =>
    Array.from({ length: STATS_PER_DEVICE }, (_, k) => {
      const start = new Date(now - (STATS_PER_DEVICE - k) * 60_000);
      return statsPayload(statsMessage({ deviceId: d.id, bundleId, model, seq: k + 1, start, end: new Date(start.getTime() + 59_000), sketch: sketches[i] }), statsWire);
    }),
  );
  const teleStart = now - TELEMETRY_PER_DEVICE * 10_000;
  const telePayloads = devices.map((d) =>
    Array.from({ length: TELEMETRY_PER_DEVICE }, (_, k) => JSON.stringify(telemetryMessage({ deviceId: d.id, seq: k + 1, at: new Date(teleStart + k * 10_000), inferences: 50 + (k % 50), errors: k % 7 ? {} : { timeout: 1 } }))),
  );
  return { sketches, statsPayloads, telePayloads };
}

/** 50 numeric features, 20 quantile bins, classifier outputs. */
function wideLayout(features: number) {
  const g = gaussian(mulberry32(7));
  const u = mulberry32(8);
  const names = Array.from({ length: features }, (_, i) => `x${i}`);
  const row = () => {
    const r: Record<string, number> = {};
    for (const [i, n] of names.entries()) r[n] = i + g() * (1 + (i % 5));
    return r;
  };
  const refRows = Array.from({ length: 5000 }, () => ({ ...row(), p: Math.floor(u() * 3), c: u() }));
  const profile = computeReferenceProfile(refRows, { features: names.map((name) => ({ name, kind: 'numeric' as const })), outputs: { task: 'classification', numClasses: 3, predictedClassColumn: 'p', confidenceColumn: 'c' } });
  const deviceSketch = (n: number) => {
    const s = createFeatureSetSketch(profile.layout);
    for (let i = 0; i < n; i++) addRow(s, row(), { predictedClass: Math.floor(u() * 3), confidence: u() });
    return s;
  };
  return { profile, refRows, deviceSketch, names };
}

/** A second Mosquitto with dynamic security for the baseline: the same device clients (any topic) and one subscriber. */
async function rawMosquitto(ids: string[]): Promise<{ via: RawBroker; stop: () => Promise<void> }> {
  const mosq = await startMosquitto();
  const admin = new DynsecAdmin({ url: mosq.url, ...mosq.admin, logger: pino({ level: 'silent' }) });
  await admin.start();
  const password = randomBytes(12).toString('base64url');
  const acls = ['publishClientSend', 'subscribePattern'].map((acltype) => ({ acltype, topic: 'flotilla/v1/devices/#', allow: true }));
  await admin.runOk([
    { command: 'createRole', rolename: 'bench', acls },
    ...['bench-sub', ...ids].map((id) => ({ command: 'createClient', username: id, password, roles: [{ rolename: 'bench' }] })),
  ]);
  await admin.stop();
  return { via: { url: mosq.url, pid: mosq.pid, sub: { username: 'bench-sub', password }, pub: (id) => ({ username: id, password }) }, stop: () => mosq.stop() };
}

/** The stats and telemetry rows again with Mosquitto (dynamic security) as the broker, the server a client in a persistent session. */
async function mosquittoRows(): Promise<BenchRow[]> {
  const skip = mosquittoSkip();
  if (skip) {
    console.log(`# Mosquitto rows skipped: ${skip}`);
    return [];
  }
  const rows: BenchRow[] = [];
  let mosq: TestMosquitto | undefined;
  let cp: TestPlane | undefined;
  let pubs: Publishers | undefined;
  try {
    mosq = await startMosquitto();
    const clientId = 'bench-server';
    cp = await startControlPlane({ driftCron: 'off', dbSynchronous, externalMqttUrl: mosq.url, externalBroker: { username: 'flotilla-server', password: randomBytes(16).toString('base64url'), admin: mosq.admin, clientId, sessionExpiryS: 300 } });
    const { layout, devices, clients, bundleId } = await fleet(cp);
    const { statsPayloads, telePayloads } = payloadsFor(layout, devices, bundleId);
    const ids = devices.map((d) => d.id);
    const raw = await rawMosquitto(ids);
    pubs = startPublishers();
    try {
      for (const [channel, payloads] of [['stats', statsPayloads], ['telemetry', telePayloads]] as const) {
        const n = payloads.reduce((a, p) => a + p.length, 0);
        const rawRate = await rawMqtt(pubs, channel, ids, payloads, raw.via);
        const rawCpu = lastCpuUs;
        const before = await stored(cp, channel);
        const [rate, batches] = await withBatches(cp, n, () => profiled(`ingest-mosquitto-${channel}`, () => timedPublish(pubs!, cp!.mqttUrl, clients, channel, payloads, async () => (await stored(cp!, channel)) >= before + n, mosq!.pid)));
        rows.push({ benchmark: `${channel} ingest on Mosquitto, MQTT → DB (${DEVICES} devices)`, value: rate, unit: 'msg/s', baseline: 'raw publish→receive through Mosquitto (dynsec), no DB', baselineValue: rawRate, ratio: rate / rawRate, note: `server in an MQTT 5 persistent session, PUBACK after commit; ${cpuNote(rawCpu, lastCpuUs)} with Mosquitto's own; ${batches}; publishers ${publishersWhere()}` });
      }
    } finally {
      await raw.stop();
    }
  } finally {
    await pubs?.close();
    await cp?.stop();
    await mosq?.stop();
  }
  return rows;
}

/** Drift evaluation for 10,000 devices × 50 features, in memory and through GET /drift on the plane's database. */
async function driftRows(cp: TestPlane): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  // Drift for 10,000 devices × 50 features, in memory: merge every device window, then evaluate.
  const FEATURES = 50;
  const N = 10_000;
  const wide = wideLayout(FEATURES);
  const distinct = Array.from({ length: 100 }, () => wide.deviceSketch(20));
  const windows = Array.from({ length: N }, (_, i) => distinct[i % distinct.length]);
  const json = windows.map((w) => JSON.stringify(w));
  const parseMs: number[] = [];
  const mergeMs: number[] = [];
  const evalMs: number[] = [];
  for (let rep = 0; rep < 3; rep++) {
    let t0 = performance.now();
    for (const j of json) JSON.parse(j);
    parseMs.push(performance.now() - t0);
    t0 = performance.now();
    const merged = mergeAllFeatureSetSketches(windows);
    mergeMs.push(performance.now() - t0);
    t0 = performance.now();
    evaluateDrift(wide.profile.sketch, merged, {});
    evalMs.push(performance.now() - t0);
  }
  const best = (xs: number[]) => Math.min(...xs);
  rows.push({ benchmark: `drift: merge ${N} device windows (${FEATURES} features, 20 bins) + evaluate`, value: best(mergeMs) + best(evalMs), unit: 'ms', baseline: `JSON.parse of the ${N} windows`, baselineValue: best(parseMs), ratio: (best(mergeMs) + best(evalMs)) / best(parseMs), note: `merge ${best(mergeMs).toFixed(0)} ms, evaluate ${best(evalMs).toFixed(2)} ms; best of 3` });

  // The server's path: a cohort's hour = 60 minute rollups (each the merge of that minute's windows), then GET /drift.
  await cp.api('POST', '/api/v1/models/wide/versions', { body: gemmModel({ nIn: FEATURES }) as BodyInit });
  const refJson = wide.refRows.map(({ p, c, ...values }) => ({ ...values, outputs: { predictedClass: p, confidence: c } }));
  const refRes = await cp.api('POST', '/api/v1/models/wide/versions/1/reference', { json: refJson });
  if (refRes.status !== 201) throw new Error(`reference: ${JSON.stringify(refRes.body)}`);
  await cp.api('POST', '/api/v1/cohorts', { json: { name: 'wide', selector: 'fleet=wide' } });
  const versionId = (await cp.plane.db.query.referenceProfiles.findFirst({ orderBy: (r, { desc }) => desc(r.createdAt) }))!.modelVersionId;
  const perMinute = Math.ceil(N / 60);
  const minuteSketch = mergeAllFeatureSetSketches(Array.from({ length: perMinute }, (_, i) => distinct[i % distinct.length]));
  const end = new Date();
  const rollupRows = Array.from({ length: 60 }, (_, m) => ({
    scope: 'cohort' as const,
    key: 'wide',
    modelVersionId: versionId,
    granularity: 'minute' as const,
    bucketStart: bucketStart(end.getTime() - (m + 1) * 60_000, 'minute'),
    windows: perMinute,
    rows: minuteSketch.quality.rows,
    sketch: minuteSketch,
    updatedAt: end.toISOString(),
  }));
  for (const r of rollupRows) await cp.plane.db.insert(statsRollups).values(r).onConflictDoNothing();
  const q = `/api/v1/drift?model=wide@1&cohort=wide&window=1h&end=${end.toISOString()}`;
  const first = await cp.api('GET', q);
  if (first.status !== 200 || first.body.windows < N) throw new Error(`GET /drift: ${first.status} ${JSON.stringify(first.body).slice(0, 300)}`);
  const times: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t0 = performance.now();
    await cp.api('GET', q);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const merged60 = performance.now();
  mergeAllFeatureSetSketches(rollupRows.map((r) => r.sketch));
  const inMemory60 = performance.now() - merged60;
  rows.push({
    benchmark: `GET /drift 1h: 60 minute rollups of ${N} device windows (${FEATURES} features)`,
    value: percentile(times, 50),
    unit: 'ms',
    baseline: 'merge of the same 60 rollups in memory',
    baselineValue: inMemory60,
    ratio: percentile(times, 50) / inMemory60,
    note: 'p50 of 10 over HTTP: read rows, parse JSON, merge, evaluate',
  });
  return rows;
}

export async function runIngestBench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = only === 'mosquitto' ? [] : await embeddedRows();
  if (only !== 'embedded' && only !== 'direct') rows.push(...(await mosquittoRows()));
  printTable('Monitoring: ingest and drift', rows);
  return rows;
}

/**
 * The ingest path without MQTT (validation, context queries, batched writes), each message handed over
 * as the device bus would: JSON.parse of its payload. Windows and reports a day earlier than the MQTT
 * rows' (new buckets, new seqs: the same work per message). The CPU of this process over the row is
 * the server's own cost per message, whatever the machine's load (the publishers are idle then).
 */
async function directRows(cp: TestPlane, devices: Array<{ id: string }>, bundleId: string, sketches: FeatureSetSketch[], now: number, rawStats: number, rawTele: number): Promise<BenchRow[]> {
  const model = { name: 'tab', version: 1 };
  const dayBefore = now - 86_400_000;
  // In time order across the fleet (every device's k-th message, then the (k+1)-th), as devices send
  // them and as the MQTT rows' concurrent publishers deliver them: a batch spans few minute buckets.
  // Both wire forms of the same windows (new buckets and seqs for each set: the same work).
  const statsJson = (wire: 'json' | 'base64', from: number, seq0: number) =>
    Array.from({ length: STATS_PER_DEVICE }, (_, k) =>
      devices.map((d, i) => {
        const start = new Date(from - (STATS_PER_DEVICE - k) * 60_000);
        return [d.id, statsPayload(statsMessage({ deviceId: d.id, bundleId, model, seq: seq0 + k + 1, start, end: new Date(start.getTime() + 59_000), sketch: sketches[i] }), wire)] as const;
      }),
    ).flat();
  const teleStart = dayBefore - TELEMETRY_PER_DEVICE * 10_000;
  const teleJson = Array.from({ length: TELEMETRY_PER_DEVICE }, (_, k) =>
    devices.map((d) => [d.id, JSON.stringify(telemetryMessage({ deviceId: d.id, seq: TELEMETRY_PER_DEVICE + k + 1, at: new Date(teleStart + k * 10_000), inferences: 50 + (k % 50), errors: k % 7 ? {} : { timeout: 1 } }))] as const),
  ).flat();
  const rows: BenchRow[] = [];
  // Old and new wire form in both orders (json, base64, base64, json), 5 h apart (within the 72 h retention): the first row warms the code up.
  const runs = [
    ...(['json', 'base64', 'base64', 'json'] as const).map((wire, i) => ['stats', wire, statsJson(wire, dayBefore - i * 5 * 3_600_000, (i + 1) * STATS_PER_DEVICE), rawStats] as const),
    ['telemetry', '', teleJson, rawTele] as const,
  ];
  for (const [channel, wire, payloads, raw] of runs) {
    const before = await stored(cp, channel);
    const t = performance.now();
    const cpu0 = process.cpuUsage();
    await profiled(`direct-${channel}${wire && `-${wire}`}-${rows.length}`, async () => {
      for (const [id, json] of payloads) {
        if (channel === 'stats') void cp.plane.ingest.acceptStats(id, JSON.parse(json));
        else void cp.plane.ingest.acceptTelemetry(id, JSON.parse(json));
      }
      await cp.plane.ingest.flush();
      await waitFor(`direct ${channel} stored`, async () => (await stored(cp, channel)) >= before + payloads.length);
    });
    const rate = payloads.length / ((performance.now() - t) / 1000);
    const cpu = process.cpuUsage(cpu0);
    const cpuUs = (cpu.user + cpu.system) / payloads.length;
    rows.push({ benchmark: `${channel} ingest without MQTT (parse + validate + batched DB writes)${wire && `, ${wire === 'json' ? 'sketch as JSON (agents before)' : 'sketchBase64'}`}`, value: rate, unit: 'msg/s', baseline: 'raw MQTT publish→receive, no DB', baselineValue: raw, ratio: rate / raw, note: `${cpuUs.toFixed(0)} CPU µs per message` });
  }
  return rows;
}

/** The rows on the embedded broker (and the drift rows, on the same plane). */
async function embeddedRows(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  // Ingest throughput, not the broker's per-device rate limit (each device here sends its whole share at once).
  const limits = loadServerConfig({}).mqttLimits;
  const cp = await startControlPlane({ driftCron: 'off', dbSynchronous, mqttLimits: { ...limits, ratePerS: 100_000, burst: 1_000_000 } });
  const pubs = startPublishers();
  try {
    const { layout, devices, clients, bundleId } = await fleet(cp);
    const now = Date.now();
    const { sketches, statsPayloads, telePayloads } = payloadsFor(layout, devices, bundleId, now);
    const ids = devices.map((d) => d.id);
    const raw = { stats: NaN, telemetry: NaN };
    const notes = { stats: `8 features, ${statsWire === 'json' ? 'sketch as JSON (BENCH_INGEST_STATS_WIRE=json)' : 'sketchBase64'}`, telemetry: '63-bucket latency histogram' };
    for (const [channel, payloads] of only === 'direct' ? [] : ([['stats', statsPayloads], ['telemetry', telePayloads]] as const)) {
      const n = payloads.reduce((a, p) => a + p.length, 0);
      raw[channel] = await profiled(`raw-embedded-${channel}`, () => rawMqtt(pubs, channel, ids, payloads));
      const rawCpu = lastCpuUs;
      const [rate, batches] = await withBatches(cp, n, () => profiled(`ingest-embedded-${channel}`, () => timedPublish(pubs, cp.mqttUrl, clients, channel, payloads, async () => (await stored(cp, channel)) >= n)));
      rows.push({
        benchmark: `${channel} ingest, MQTT → DB (${DEVICES} devices × ${payloads[0].length} messages)`,
        value: rate,
        unit: 'msg/s',
        baseline: 'raw MQTT publish→receive, no DB',
        baselineValue: raw[channel],
        ratio: rate / raw[channel],
        note: `${(payloads[0][0].length / 1024).toFixed(1)} KiB per message, ${notes[channel]}; ${cpuNote(rawCpu, lastCpuUs)}; ${batches}; publishers ${publishersWhere()}`,
      });
    }
    rows.push(...(await directRows(cp, devices, bundleId, sketches, now, raw.stats, raw.telemetry)));
    await pubs.close();

    // BENCH_INGEST_DRIFT=off leaves the drift rows out (to iterate on ingest alone).
    if (process.env.BENCH_INGEST_DRIFT !== 'off') rows.push(...(await driftRows(cp)));
  } finally {
    await pubs.close();
    await cp.stop();
  }
  return rows;
}
