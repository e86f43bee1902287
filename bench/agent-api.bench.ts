// `npm run bench -- agent-api`: the local API's `POST /v1/predict` over TCP on compiled agent
// processes (the light client, bench/raw-http-client.ts), against the floor of any local API (node:http +
// session.run in a process of its own) and bare `session.run`, all in one run. The targets take turns
// round by round, so a shared machine's load falls on each of them alike.
//
// BENCH_AGENT_API_BASELINE=<path to another checkout's bin/flotilla-agent.js> adds that (older, built)
// agent as one more target: old vs new in the same run. BENCH_AGENT_API_PROF=<dir> writes a CPU profile
// of each agent there (`--cpu-prof`, main thread and inference worker) when it stops.
// BENCH_AGENT_API_ARGS='--inference-thread main;--stats off' adds agents of this build with those flags;
// BENCH_AGENT_API_PLAIN_NODE=1 adds one started as `node bin/flotilla-agent.js` (without the shebang's node options).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { api, freePort, REPO, waitFor } from '../agent/testing/harness.ts';
import { runCli } from '../test/helpers/cli.ts';
import { startControlPlane } from '../test/helpers/control-plane.ts';
import { gemmModel } from '../test/helpers/models.ts';
import { percentile, printTable, type BenchRow } from './lib.ts';
import { publishTabularDemo } from './tabular-demo-bundle.ts';
import { rawHttpClient, type RawHttpClient } from './raw-http-client.ts';

const ROUNDS = Number(process.env.BENCH_AGENT_API_ROUNDS ?? 12);
const PER_ROUND = 500;
const ROW = [0.5, -1, 2, 0.1, 0, 1.5, -0.3, 0.8];

interface Target {
  label: string;
  port: number;
  pid: number;
  /** Agents: RSS is reported after the rounds. */
  agent?: true;
  /** CPU time of the server process (all its threads) during its rounds, µs. */
  cpuUs: number;
  client?: RawHttpClient;
  samples: number[];
  stop(): Promise<void>;
}

/** The bin as a gateway runs it; with `profDir`, through node with --cpu-prof (not allowed in NODE_OPTIONS) and the shebang's flags. */
/** utime + stime of a process (all threads), µs; /proc counts in clock ticks (100 Hz). */
async function cpuOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10_000;
}

function startAgent(bin: string, args: string[], profDir?: string, plainNode = false): { child: ChildProcess; stop(): Promise<void> } {
  const [cmd, argv] = profDir
    ? [process.execPath, ['--cpu-prof', '--cpu-prof-interval=100', `--cpu-prof-dir=${profDir}`, '--max-semi-space-size=2', '--v8-pool-size=1', bin, ...args]]
    : plainNode ? [process.execPath, [bin, ...args]] : [bin, args];
  const child = spawn(cmd, argv, { cwd: path.dirname(path.dirname(bin)), env: { ...process.env, FLOTILLA_AGENT_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export async function runAgentApiBench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-agent-api-bench-'));
  const modelPath = path.join(dir, 'model.onnx');
  await writeFile(modelPath, gemmModel({ seed: 1 }));
  const body = JSON.stringify({ features: Object.fromEntries(ROW.map((v, i) => [`f${i}`, v])) });

  const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const bare: number[] = [];
  for (let i = 0; i < 200 + ROUNDS * PER_ROUND; i++) {
    const t = performance.now();
    await session.run({ features: new ort.Tensor('float32', Float32Array.from(ROW), [1, 8]) });
    if (i >= 200) bare.push((performance.now() - t) * 1000);
  }
  await session.release();
  bare.sort((a, b) => a - b);
  const base = percentile(bare, 50);
  rows.push({ benchmark: 'bare InferenceSession.run p50', value: base, unit: 'µs', note: '8→3 Gemm, batch 1, this process' });

  const targets: Target[] = [];
  const cp = await startControlPlane();
  try {
    const env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
    const cli = async (...args: string[]) => {
      const r = await runCli(['--json', ...args], env);
      if (r.code !== 0) throw new Error(`flotilla ${args.join(' ')}: ${r.stderr}`);
      return JSON.parse(r.stdout);
    };
    const keys = await publishTabularDemo(cp, cli, dir, modelPath);

    // The floor: node:http + JSON + session.run in a child process, nothing else.
    const floorPort = await freePort();
    const floorScript = `const ort=await import('onnxruntime-node');const http=await import('node:http');const s=await ort.InferenceSession.create(${JSON.stringify(modelPath)},{intraOpNumThreads:1,interOpNumThreads:1});http.createServer((req,res)=>{const c=[];req.on('data',d=>c.push(d));req.on('end',async()=>{const b=JSON.parse(Buffer.concat(c).toString('utf8'));const out=await s.run({features:new ort.Tensor('float32',Float32Array.from(Object.values(b.features)),[1,8])});const j=JSON.stringify({outputs:{logits:Array.from(out.logits.data)}});res.writeHead(200,{'content-type':'application/json','content-length':Buffer.byteLength(j)}).end(j)})}).listen(${floorPort},'127.0.0.1',()=>console.log('up'))`;
    const floor = spawn(process.execPath, ['--input-type=module', '-e', floorScript], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => floor.stdout.once('data', r));
    targets.push({ label: 'node:http + session.run in its own process (floor)', port: floorPort, pid: floor.pid!, cpuUs: 0, samples: [], stop: async () => void floor.kill() });

    const prof = process.env.BENCH_AGENT_API_PROF;
    const variants: Array<{ label: string; bin: string; extra: string[]; plainNode?: boolean }> = [{ label: 'agent (this build)', bin: path.join(REPO, 'bin', 'flotilla-agent.js'), extra: [] }];
    const baseline = process.env.BENCH_AGENT_API_BASELINE;
    if (baseline) {
      if (!existsSync(baseline)) throw new Error(`BENCH_AGENT_API_BASELINE: ${baseline} does not exist`);
      variants.push({ label: `agent (baseline: ${baseline})`, bin: path.resolve(baseline), extra: [] });
    }
    // More agents of this build with extra flags, ';'-separated: e.g. '--inference-thread main;--stats off'.
    for (const flags of (process.env.BENCH_AGENT_API_ARGS ?? '').split(';').filter((f) => f.trim())) {
      variants.push({ label: `agent (this build), ${flags.trim()}`, bin: variants[0].bin, extra: flags.trim().split(/\s+/) });
    }
    if (process.env.BENCH_AGENT_API_PLAIN_NODE === '1') variants.push({ label: 'agent (this build), as `node bin/flotilla-agent.js`', bin: variants[0].bin, extra: [], plainNode: true });
    for (const [i, v] of variants.entries()) {
      const port = await freePort();
      const dataDir = path.join(dir, `agent-${i}`);
      const token = (await cli('enroll-tokens', 'create')).token;
      const agent = startAgent(v.bin, ['--server', cp.url, '--enroll-token', token, '--trust-root', keys.rootPublicKey, '--data-dir', dataDir, '--api-port', String(port), '--probation-ms', '100', ...v.extra], prof && path.resolve(prof, `agent-${i}`), v.plainNode);
      targets.push({ label: v.label, agent: true, port, pid: agent.child.pid!, cpuUs: 0, samples: [], stop: agent.stop });
      await waitFor(() => {
        if (agent.child.exitCode !== null) throw new Error(`${v.label} exited with code ${agent.child.exitCode}`);
        return api(port, 'GET', '/healthz').then((r) => r.status === 200).catch(() => false);
      }, `${v.label} up`, 60_000);
      const deviceId = JSON.parse(await readFile(path.join(dataDir, 'identity.json'), 'utf8')).deviceId;
      await cli('deploy', 'tabular-demo@1', '--device', deviceId);
      await waitFor(async () => (await cp.api('GET', `/api/v1/devices/${deviceId}`)).body.updateState === 'active', `${v.label} active`, 60_000);
    }

    // A fresh connection for each round: a round of the others may outlast a server's keep-alive timeout.
    const connect = async (t: Target, warmUp: number) => {
      t.client?.close();
      t.client = await rawHttpClient(t.port, '/v1/predict', 'application/json', body);
      for (let i = 0; i < warmUp; i++) if ((await t.client.call()) !== 200) throw new Error(`${t.label}: warm-up failed`);
    };
    for (const t of targets) await connect(t, 300);
    for (let round = 0; round < ROUNDS; round++) {
      // A different order each round, so no target always follows the same one.
      const order = round % 2 ? [...targets].reverse() : targets;
      for (const t of order) {
        await connect(t, 20);
        const cpu0 = await cpuOf(t.pid);
        for (let i = 0; i < PER_ROUND; i++) {
          const t0 = performance.now();
          const status = await t.client!.call();
          t.samples.push((performance.now() - t0) * 1000);
          if (status !== 200) throw new Error(`${t.label}: HTTP ${status}`);
        }
        t.cpuUs += (await cpuOf(t.pid)) - cpu0;
      }
    }
    for (const t of targets) {
      if (!t.agent) continue;
      const status = await readFile(`/proc/${t.pid}/status`, 'utf8');
      // Where the model ran (--inference-thread auto chooses per model): the row says which the figures are.
      const inference = (await api(t.port, 'GET', '/v1/status')).body.inference;
      rows.push({ benchmark: `${t.label} RSS after the rounds`, value: Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024, unit: 'MB', note: `tabular model active, on the ${inference?.thread ?? '?'} thread (${inference?.mode ?? '?'}; run p50 ${inference?.runs?.p50Us ?? '?'} µs)` });
    }
    for (const t of targets) {
      if (!t.agent) continue;
      const stats = (await api(t.port, 'GET', '/v1/status')).body.monitoring?.stats;
      if (stats?.enabled && !(stats.rows + stats.openRows + stats.queued > 0)) throw new Error(`${t.label}: statistics on but nothing sketched`);
    }
    const floorP50 = percentile(targets[0].samples.sort((a, b) => a - b), 50);
    for (const t of targets) {
      t.samples.sort((a, b) => a - b);
      const p50 = percentile(t.samples, 50);
      const cpu = t.cpuUs / t.samples.length;
      rows.push({ benchmark: `${t.label} CPU per request`, value: cpu, unit: 'µs', baseline: 'floor CPU per request', baselineValue: targets[0].cpuUs / targets[0].samples.length, ratio: cpu / (targets[0].cpuUs / targets[0].samples.length), note: 'all threads of the server process, /proc/<pid>/stat' });
      rows.push({ benchmark: `${t.label} p50, light client, TCP`, value: p50, unit: 'µs', baseline: 'bare run p50', baselineValue: base, ratio: p50 / base, note: `+${(p50 - base).toFixed(0)} µs over bare${t === targets[0] ? '' : `, +${(p50 - floorP50).toFixed(0)} µs over the floor`}; p90 ${percentile(t.samples, 90).toFixed(0)} µs; ${t.samples.length} requests in ${ROUNDS} interleaved rounds` });
    }
  } finally {
    for (const t of targets) {
      t.client?.close();
      await t.stop();
    }
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  }
  printTable('Agent local API (interleaved)', rows);
  return rows;
}
