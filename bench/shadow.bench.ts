// Shadow evaluation and staged rollouts (issue 14), each against a baseline measured in the same run:
// - request latency through the agent's local API with a shadow candidate on 20 % of requests vs no
//   shadow: two real agent processes serve the same bundle, one of them also shadows a candidate of
//   the same cost (a rescaled copy), and requests alternate between the two so both see the same
//   machine load. p50 and p99 ratios; target ≤ 1.05×.
// - time until every device of a stage reports the bundle active, for a staged rollout to 1,000
//   simulated devices (simulator/, one child process), against a direct deployment to the same devices.
// Bounded: BENCH_SHADOW_DEVICES (default 1000), BENCH_SHADOW_REQUESTS per round (default 3000),
// BENCH_SHADOW_ROUNDS (default 5, after 1,000 warm-up requests each), every wait with a
// timeout; only 127.0.0.1. BENCH_SHADOW_PART=latency|stages runs one part alone.
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentProcess, api, freePort, waitFor } from '../agent/testing/harness.ts';
import { createKeyList, signKeyList } from '../firmware-bundles/key-list.ts';
import { generateKeyPair } from '../firmware-bundles/keys.ts';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import { SimulatorProcess, type SimulatorProgress } from '../simulator/simulator-process.ts';
import { startControlPlane, type TestPlane } from '../test/helpers/control-plane.ts';
import { gemmModel } from '../test/helpers/models.ts';
import { scaledGemmModel } from '../test/helpers/shadow-models.ts';
import { percentile, printTable, type BenchRow } from './lib.ts';
import { measureStagedRollout } from './staged-rollout.ts';

const DEVICES = Number(process.env.BENCH_SHADOW_DEVICES ?? 1000);
const N = Number(process.env.BENCH_SHADOW_REQUESTS ?? 3000);
const ROUNDS = Number(process.env.BENCH_SHADOW_ROUNDS ?? 5);
const WARMUP = 1000;
const SHARE = 0.2;
/** `latency` or `stages` runs one part alone (default: both). */
const PART = process.env.BENCH_SHADOW_PART ?? 'both';
const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo', 'bundle.json');
const ROW = [0.5, -1, 2, 0.1, 0, 1.5, -0.3, 0.8];

// One keep-alive connection per agent and node:http on the client side, as in agent.bench.ts.
const client = new http.Agent({ keepAlive: true, maxSockets: 2 });
function postJson(port: number, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/v1/predict', method: 'POST', agent: client, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${res.statusCode}: ${text}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Polls until `fn` holds or the time is up; false then (the bench goes on with what it has). */
async function until(fn: () => boolean, timeoutMs: number, everyMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (fn()) return true;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return false;
}

async function check(r: Promise<{ status: number; body: any }>, what: string): Promise<any> {
  const res = await r;
  if (res.status >= 300) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Keys, two versions (v2 agrees with v1 and costs the same) and their bundles; returns the bundle ids and the root key. */
async function setup(cp: TestPlane): Promise<{ bundles: string[]; rootPublicKey: string }> {
  const root = generateKeyPair();
  const release = await check(cp.api('POST', '/api/v1/keys/release'), 'release key');
  await check(cp.api('PUT', '/api/v1/keys/keylist', { json: signKeyList(createKeyList({ version: 1, root, keys: [release], threshold: 1, expiresAt: new Date(Date.now() + 86400e3) }), root.privateKeyPem) }), 'key list');
  const { definition, labels } = await loadBundleDefinition(BUNDLE_DEF);
  const bundles: string[] = [];
  for (const [v, bytes] of [gemmModel({ seed: 1 }), scaledGemmModel(1, 1.5)].entries()) {
    await check(cp.api('POST', '/api/v1/models/tab/versions', { body: bytes as unknown as BodyInit }), 'model');
    bundles.push((await check(cp.api('POST', '/api/v1/bundles', { json: { model: `tab@${v + 1}`, definition, labels } }), 'bundle')).id);
  }
  return { bundles, rootPublicKey: root.publicKey };
}

async function latencyRows(dir: string): Promise<BenchRow[]> {
  const cp = await startControlPlane({ schedulerTickMs: 500, driftCron: 'off' });
  const agents: AgentProcess[] = [];
  try {
    const { bundles, rootPublicKey } = await setup(cp);
    const start = async (mode: 'on' | 'off') => {
      await check(cp.api('POST', '/api/v1/cohorts', { json: { name: `shadow-${mode}`, selector: `shadow=${mode}` } }), 'cohort');
      const token = (await check(cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { shadow: mode } } }), 'token')).token;
      const port = await freePort();
      const agent = new AgentProcess(['--server', cp.url, '--enroll-token', token, '--trust-root', rootPublicKey, '--data-dir', path.join(dir, `agent-${mode}`), '--api-port', String(port), '--probation-ms', '100', '--stats', 'off'], { FLOTILLA_AGENT_LOG_LEVEL: 'warn' }).start();
      agents.push(agent);
      await waitFor(async () => (await api(port, 'GET', '/v1/status')).body.deviceId, `agent ${mode} enrolled`, 60_000);
      await check(cp.api('POST', '/api/v1/deployments', { json: { bundle: bundles[0], cohort: `shadow-${mode}` } }), 'deployment');
      await waitFor(async () => (await api(port, 'GET', '/v1/status')).body.update?.state === 'active', `agent ${mode} active`, 120_000);
      return port;
    };
    const on = await start('on');
    const off = await start('off');
    // The candidate beside the active model on one agent, for longer than the bench runs.
    await check(cp.api('POST', '/api/v1/rollouts', { json: { bundle: bundles[1], cohort: 'shadow-on', stages: [1], bakeS: 0, shadow: { share: SHARE, durationS: 3600, windowS: 60 }, gates: { maxLatencyRatio: null } } }), 'shadow rollout');
    await waitFor(async () => (await api(on, 'GET', '/v1/status')).body.shadow?.state === 'shadowing', 'the candidate loaded', 120_000);

    const body = JSON.stringify({ features: Object.fromEntries(ROW.map((v, i) => [`f${i}`, v])) });
    for (let i = 0; i < WARMUP; i++) await Promise.all([postJson(on, body), postJson(off, body)]);
    // ROUNDS rounds of N requests to each agent, alternating which goes first: the pooled p50/p99 ratio,
    // and each round's own ratio so the table shows how far the p99 ratio swings between runs.
    const pooled = { on: [] as number[], off: [] as number[] };
    const perRound: Record<50 | 99, number[]> = { 50: [], 99: [] };
    for (let round = 0; round < ROUNDS; round++) {
      const withShadow: number[] = [];
      const without: number[] = [];
      for (let i = 0; i < N; i++) {
        for (const [port, out] of (i % 2 ? [[on, withShadow], [off, without]] : [[off, without], [on, withShadow]]) as Array<[number, number[]]>) {
          const t = performance.now();
          await postJson(port, body);
          out.push((performance.now() - t) * 1000);
        }
      }
      withShadow.sort((a, b) => a - b);
      without.sort((a, b) => a - b);
      for (const p of [50, 99] as const) perRound[p].push(percentile(withShadow, p) / percentile(without, p));
      pooled.on.push(...withShadow);
      pooled.off.push(...without);
    }
    pooled.on.sort((a, b) => a - b);
    pooled.off.sort((a, b) => a - b);
    const shadow = (await api(on, 'GET', '/v1/status')).body.shadow;
    const rows: BenchRow[] = [];
    for (const p of [50, 99] as const) {
      const ratios = [...perRound[p]].sort((a, b) => a - b);
      rows.push({ benchmark: `local API p${p}, no shadow`, value: percentile(pooled.off, p), unit: 'µs' });
      rows.push({
        benchmark: `local API p${p}, shadow on ${SHARE * 100} % of requests`,
        value: percentile(pooled.on, p),
        unit: 'µs',
        baseline: `no shadow p${p}`,
        baselineValue: percentile(pooled.off, p),
        ratio: percentile(pooled.on, p) / percentile(pooled.off, p),
        note: `target ≤ 1.05×; ${ROUNDS} rounds × ${N} requests each, alternating; per-round ratio median ${percentile(ratios, 50).toFixed(3)}, ${ratios[0].toFixed(3)}–${ratios.at(-1)!.toFixed(3)}${p === 50 ? `; ${shadow?.compared ?? 0} requests compared by the candidate` : ''}`,
      });
    }
    return rows;
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    await cp.stop();
  }
}

async function stageRows(dir: string): Promise<BenchRow[]> {
  const cp = await startControlPlane({ schedulerTickMs: 500, driftCron: 'off', ingestFlushMs: 1000 });
  // Devices' state on tmpfs where there is one (as in scale.bench.ts): the disk is not what is measured.
  const simRoot = existsSync('/dev/shm') ? await mkdtemp('/dev/shm/flotilla-shadow-sim-') : dir;
  let sim: SimulatorProcess | undefined;
  const rows: BenchRow[] = [];
  try {
    const { bundles, rootPublicKey } = await setup(cp);
    await check(cp.api('POST', '/api/v1/cohorts', { json: { name: 'fleet', selector: 'fleet=bench' } }), 'cohort');
    const token = (await check(cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { fleet: 'bench' } } }), 'token')).token;
    sim = new SimulatorProcess(['--devices', String(DEVICES), '--server', cp.url, '--enroll-token', token, '--trust-root', rootPublicKey, '--telemetry', '30s', '--stats', '60s', '--rows', '0', '--probation', '1s', '--concurrency', '25', '--connect-wait', '30s', '--progress-every', '100ms', '--data-dir', simRoot, '--name-prefix', 'stage-', '--log-level', 'fatal']);
    const of = (k: keyof SimulatorProgress) => sim!.last?.[k] ?? 0;
    const tell = setInterval(() => console.error(`shadow bench: ${of('started')} started, ${of('connected')} connected, ${of('active')} active, ${of('failed')} failed`), 15_000);
    tell.unref();
    // On a loaded machine some devices may not get connected in time: measure with those that did.
    await until(() => of('connected') >= DEVICES, 15 * 60_000, 500);
    const n = of('connected');
    const short = n < DEVICES ? `; only ${n} of ${DEVICES} connected in 15 min` : '';

    // Baseline: one deployment to every device, until the simulator reports all of them active.
    let t = performance.now();
    await check(cp.api('POST', '/api/v1/deployments', { json: { bundle: bundles[0], cohort: 'fleet' } }), 'deployment');
    let deploy95S = NaN;
    await until(() => {
      if (Number.isNaN(deploy95S) && of('active') >= 0.95 * n) deploy95S = (performance.now() - t) / 1000;
      return of('active') + of('failed') >= n;
    }, 10 * 60_000, 100);
    const deployS = (performance.now() - t) / 1000;
    rows.push({ benchmark: `direct deployment to ${n} devices: all active`, value: deployS, unit: 's', note: `${of('active')} active, ${of('failed')} failed; 95 % active after ${deploy95S.toFixed(1)} s; download, smoke test, 1 s probation${short}` });

    // A staged rollout of v2, no bake: per stage, from the stage's start until its last device is active.
    // What is measured is the stages' pace, not the failed-update gate: an update that fails on a loaded
    // machine (up to 1 % of the devices) is counted in the row, not allowed to pause the rollout.
    const gates = { maxLatencyRatio: null, maxFailedUpdates: Math.max(1, Math.floor(n / 100)) };
    rows.push(...(await measureStagedRollout({
      api: (method, p, body) => check(cp.api(method, p, body === undefined ? {} : { json: body }), `${method} ${p}`),
      bundle: bundles[1],
      cohort: 'fleet',
      stages: [0.1, 0.5, 1],
      devices: n,
      baseline: { label: `direct deployment to ${n}`, seconds: deployS },
      body: { gates },
      tickNote: 'ticks every 500 ms, polled every 250 ms',
    })));
    clearInterval(tell);
  } catch (err) {
    rows.push({ benchmark: 'stage run cut short', value: NaN, unit: '-', note: (err as Error).message.slice(0, 200) });
  } finally {
    await sim?.stop();
    await cp.stop();
    if (simRoot !== dir) await rm(simRoot, { recursive: true, force: true });
  }
  return rows;
}

export async function runShadowBench(): Promise<BenchRow[]> {
  const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-shadow-bench-'));
  try {
    const latency = PART === 'stages' ? [] : await latencyRows(dir);
    // Shown at once: the 1,000-device part takes minutes on a loaded machine and may be cut short.
    if (latency.length) printTable('Shadow: request latency (first part)', latency);
    const rows = [...latency, ...(PART === 'latency' ? [] : await stageRows(dir))];
    printTable('Shadow evaluation and rollout stages', rows);
    return rows;
  } finally {
    client.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}
