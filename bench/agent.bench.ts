// Agent benchmarks: inference overhead (local API round trip and in-process ModelHost.infer vs a bare
// InferenceSession.run on the same model and input), agent RSS with a model loaded, and the time from
// `deploy` to `active` on loopback, and the local API's latency with input statistics on vs off —
// all against real processes.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ModelHost } from '../agent/runtime/model-host.ts';
import { AgentProcess, api, freePort, waitFor } from '../agent/testing/harness.ts';
import { runCli } from '../test/helpers/cli.ts';
import { startControlPlane } from '../test/helpers/control-plane.ts';
import { generateRows } from '../test/helpers/device-stats.ts';
import { gemmModel } from '../test/helpers/models.ts';
import { percentile, printTable, type BenchRow } from './lib.ts';

const N = 3000;
const ROW = [0.5, -1, 2, 0.1, 0, 1.5, -0.3, 0.8];
const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');

async function timeEach(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < 200; i++) await fn(); // warm-up
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    out.push((performance.now() - t) * 1000);
  }
  return out.sort((a, b) => a - b);
}

export async function runAgentBench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-agent-bench-'));
  const modelPath = path.join(dir, 'model.onnx');
  await writeFile(modelPath, gemmModel({ seed: 1 }));

  // Baseline: bare session.run on the main thread.
  const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1 });
  const bare = await timeEach(N, () => session.run({ features: new ort.Tensor('float32', Float32Array.from(ROW), [1, 8]) }));
  await session.release();
  const base = percentile(bare, 50);
  rows.push({ benchmark: 'bare InferenceSession.run p50', value: base, unit: 'µs', note: '8→3 Gemm, batch 1' });

  // In-process: the agent's worker-thread host, one request at a time and 64 in flight.
  const host = new ModelHost();
  await host.start();
  host.activate(await host.load(modelPath));
  const feeds = () => ({ features: { type: 'float32' as const, dims: [1, 8], data: Float32Array.from(ROW) } });
  const seq = await timeEach(N, () => host.infer(feeds()));
  rows.push({ benchmark: 'ModelHost.infer sequential p50', value: percentile(seq, 50), unit: 'µs', baseline: 'bare run p50', baselineValue: base, ratio: percentile(seq, 50) / base });
  const t = performance.now();
  await Promise.all(Array.from({ length: 64 }, async (_, w) => {
    for (let i = w; i < N * 4; i += 64) await host.infer(feeds());
  }));
  const pipelined = ((performance.now() - t) * 1000) / (N * 4);
  rows.push({ benchmark: 'ModelHost.infer, 64 in flight (per request)', value: pipelined, unit: 'µs', baseline: 'bare run p50', baselineValue: base, ratio: pipelined / base });
  await host.stop();

  // A real agent process behind a real control plane: deploy → active, local API round trip, RSS.
  const cp = await startControlPlane();
  const env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
  const cli = async (...args: string[]) => {
    const r = await runCli(['--json', ...args], env);
    if (r.code !== 0) throw new Error(`flotilla ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  let agent: AgentProcess | undefined;
  let agentOff: AgentProcess | undefined;
  try {
    const keys = await cli('keys', 'init', '--root-key', path.join(dir, 'root.key'));
    await cli('models', 'push', modelPath, '--name', 'tabular-demo');
    // A reference profile first, so the bundle ships its layout and the agent sketches all 8 features.
    const reference = generateRows(2000, 1).map((r) => ({ ...r.values, outputs: { predictedClass: r.predictedClass, confidence: r.confidence } }));
    const ref = await cp.api('POST', '/api/v1/models/tabular-demo/versions/1/reference', { json: reference });
    if (ref.status !== 201) throw new Error(`reference: ${JSON.stringify(ref.body)}`);
    await cli('bundles', 'build', 'tabular-demo@1', '--def', BUNDLE_DEF);
    const token = (await cli('enroll-tokens', 'create')).token;
    const port = await freePort();
    agent = new AgentProcess(['--server', cp.url, '--enroll-token', token, '--trust-root', keys.rootPublicKey, '--data-dir', path.join(dir, 'agent'), '--api-port', String(port), '--probation-ms', '100'], {
      FLOTILLA_AGENT_LOG_LEVEL: 'warn',
    }).start();
    await waitFor(() => api(port, 'GET', '/healthz').then((r) => r.status === 200), 'agent up', 30_000);
    const rssIdle = await rssOf(agent.child!.pid!);
    const deviceId = JSON.parse(await readFile(path.join(dir, 'agent', 'identity.json'), 'utf8')).deviceId;
    const t0 = performance.now();
    await cli('deploy', 'tabular-demo@1', '--device', deviceId);
    await waitFor(async () => (await cp.api('GET', `/api/v1/devices/${deviceId}`)).body.updateState === 'active', 'active', 60_000);
    rows.push({ benchmark: 'deploy → active (1 agent, loopback)', value: performance.now() - t0, unit: 'ms', note: 'CLI deploy to reported active, probation 100 ms' });
    const body = JSON.stringify({ features: Object.fromEntries(ROW.map((v, i) => [`f${i}`, v])) });
    const local = await timeEach(N, () => fetch(`http://127.0.0.1:${port}/v1/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then((r) => r.arrayBuffer()));
    rows.push({ benchmark: 'local API POST /v1/predict p50', value: percentile(local, 50), unit: 'µs', baseline: 'bare run p50', baselineValue: base, ratio: percentile(local, 50) / base });
    rows.push({ benchmark: 'local API POST /v1/predict p99', value: percentile(local, 99), unit: 'µs' });
    rows.push({ benchmark: 'agent RSS, no model', value: rssIdle / 1e6, unit: 'MB' });
    rows.push({ benchmark: 'agent RSS, model loaded + 3k requests', value: (await rssOf(agent.child!.pid!)) / 1e6, unit: 'MB', baseline: 'agent RSS, no model', baselineValue: rssIdle / 1e6, ratio: (await rssOf(agent.child!.pid!)) / rssIdle });

    // Input statistics on vs off: a second agent with --stats off serves the same bundle, and requests
    // alternate between the two, so both see the same machine load (measured one after the other, the
    // difference drowned in the load of a shared machine). Batches of 8 rows give the sketching work.
    const offPort = await freePort();
    const offToken = (await cli('enroll-tokens', 'create')).token;
    const offDir = path.join(dir, 'agent-off');
    agentOff = new AgentProcess(['--server', cp.url, '--enroll-token', offToken, '--trust-root', keys.rootPublicKey, '--data-dir', offDir, '--api-port', String(offPort), '--probation-ms', '100', '--stats', 'off'], {
      FLOTILLA_AGENT_LOG_LEVEL: 'warn',
    }).start();
    await waitFor(() => api(offPort, 'GET', '/healthz').then((r) => r.status === 200), 'second agent up', 30_000);
    const offId = JSON.parse(await readFile(path.join(offDir, 'identity.json'), 'utf8')).deviceId;
    await cli('deploy', 'tabular-demo@1', '--device', offId);
    await waitFor(async () => (await cp.api('GET', `/api/v1/devices/${offId}`)).body.updateState === 'active', 'second agent active', 60_000);
    const batchBody = JSON.stringify({ features: Array.from({ length: 8 }, (_, k) => Object.fromEntries(ROW.map((v, i) => [`f${i}`, v + k * 0.1]))) });
    const post = (p: number) => fetch(`http://127.0.0.1:${p}/v1/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: batchBody }).then((r) => r.arrayBuffer());
    const on: number[] = [];
    const off: number[] = [];
    for (let i = 0; i < 200; i++) await Promise.all([post(port), post(offPort)]); // warm-up
    for (let i = 0; i < N; i++) {
      for (const [p, out] of (i % 2 ? [[port, on], [offPort, off]] : [[offPort, off], [port, on]]) as Array<[number, number[]]>) {
        const t = performance.now();
        await post(p);
        out.push((performance.now() - t) * 1000);
      }
    }
    on.sort((a, b) => a - b);
    off.sort((a, b) => a - b);
    const sketched = (await api(port, 'GET', '/v1/status')).body.monitoring.stats;
    for (const p of [50, 99]) {
      rows.push({ benchmark: `local API p${p}, statistics off (8-row batch)`, value: percentile(off, p), unit: 'µs' });
      rows.push({ benchmark: `local API p${p}, statistics on (8-row batch)`, value: percentile(on, p), unit: 'µs', baseline: `statistics off p${p}`, baselineValue: percentile(off, p), ratio: percentile(on, p) / percentile(off, p), note: p === 50 ? `${sketched.rows} rows sketched, ${sketched.dropped} dropped` : undefined });
    }
  } finally {
    await agent?.stop();
    await agentOff?.stop();
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  }
  printTable('Agent', rows);
  return rows;
}

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}
