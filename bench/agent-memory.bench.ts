// Agent memory (`npm run bench -- agent-memory`): where an agent process's RSS goes, each figure
// against a baseline measured in the same run. Per module: bare Node, then Node with one of the
// agent's dependencies imported, each in a process of its own. The agent: the compiled agent enrolled
// in a real control plane, idle (no bundle) at several restarts on the same data dir, what native code
// it has mapped (`/v1/status` → `memory.native`), and with the 8→3 MLP after 3k requests in the default
// worker mode and with `--inference-thread main`, against 90 MB + onnxruntime and the session in a
// process of their own. RSS, file-backed and anonymous parts from /proc/<pid>/status.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentProcess, api, freePort, REPO, waitFor } from '../agent/testing/harness.ts';
import { runCli } from '../test/helpers/cli.ts';
import { startControlPlane } from '../test/helpers/control-plane.ts';
import { gemmModel } from '../test/helpers/models.ts';
import { percentile, printTable, type BenchRow } from './lib.ts';

const N = 3000;
const RESTARTS = Number(process.env.BENCH_AGENT_RESTARTS ?? 5);
const SETTLE_MS = 3000;
const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');
const BODY = JSON.stringify({ features: { f0: 0.5, f1: -1, f2: 2, f3: 0.1, f4: 0, f5: 1.5, f6: -0.3, f7: 0.8 } });

interface Rss {
  rss: number;
  anon: number;
  file: number;
}

async function rssOf(pid: number): Promise<Rss> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)![1]) / 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
}

/** RSS of a node process running `script` (ESM, from the repository so packages resolve), read after it settled. */
async function rssOfScript(script: string): Promise<Rss> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', `${script};await new Promise(r=>setTimeout(r,${SETTLE_MS}));process.stdout.write('x');await new Promise(r=>setTimeout(r,60000))`], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => child.stdout!.once('data', r));
  const rss = await rssOf(child.pid!);
  child.kill();
  return rss;
}

const mb = (n: number) => `${n.toFixed(1)} MB`;
const spread = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: percentile(s, 50), min: s[0], max: s[s.length - 1], text: `median of ${s.length}: ${s.map((x) => x.toFixed(1)).join(', ')}` };
};

function post(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/v1/predict', method: 'POST', agent: keepAlive, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`predict: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(BODY);
  });
}
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });

export async function runAgentMemoryBench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-agent-mem-'));
  const modelPath = path.join(dir, 'model.onnx');
  await writeFile(modelPath, gemmModel({ seed: 1 }));

  // Per module, each in a process of its own, as a delta over bare Node.
  const bare = await rssOfScript('0');
  rows.push({ benchmark: 'node alone', value: bare.rss, unit: 'MB', note: `anon ${mb(bare.anon)}, file-backed ${mb(bare.file)}` });
  const modules: Array<[string, string]> = [
    ['mqtt', "await import('mqtt')"],
    ['pino', "await import('pino')"],
    ['zod', "await import('zod')"],
    ['commander', "await import('commander')"],
    ['onnxruntime-node', "await import('onnxruntime-node')"],
    ['sharp', "await import('sharp')"],
    ['a worker thread (empty)', "const {Worker}=await import('node:worker_threads');new Worker('setInterval(()=>{},1e6)',{eval:true})"],
    ['a worker thread with onnxruntime-node', "const {Worker}=await import('node:worker_threads');new Worker(\"import('onnxruntime-node').then(()=>setInterval(()=>{},1e6))\",{eval:true})"],
  ];
  for (const [name, script] of modules) {
    const r = await rssOfScript(script);
    rows.push({ benchmark: `+ ${name}`, value: r.rss - bare.rss, unit: 'MB', baseline: 'node alone', baselineValue: bare.rss, note: `anon +${mb(r.anon - bare.anon)}, file-backed +${mb(r.file - bare.file)}` });
  }
  const session = await rssOfScript(`const ort=await import('onnxruntime-node');const s=await ort.InferenceSession.create(${JSON.stringify(modelPath)},{intraOpNumThreads:1,interOpNumThreads:1});for(let i=0;i<${N};i++)await s.run({features:new ort.Tensor('float32',new Float32Array(8),[1,8])})`);
  const sessionMB = session.rss - bare.rss;
  rows.push({ benchmark: '+ onnxruntime-node + the MLP session after 3k runs', value: sessionMB, unit: 'MB', baseline: 'node alone', baselineValue: bare.rss, note: 'what the model adds to the 90 MB budget' });

  const cp = await startControlPlane({ driftCron: 'off' });
  const env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
  const cli = async (...args: string[]) => {
    const r = await runCli(['--json', ...args], env);
    if (r.code !== 0) throw new Error(`flotilla ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const agents: AgentProcess[] = [];
  try {
    const keys = await cli('keys', 'init', '--root-key', path.join(dir, 'root.key'));
    await cli('models', 'push', modelPath, '--name', 'tabular-demo');
    await cli('bundles', 'build', 'tabular-demo@1', '--def', BUNDLE_DEF);

    /** An enrolled agent (first start enrolls), up and connected; returns it with its port. */
    const startAgent = async (dataDir: string, extra: string[] = []) => {
      const port = await freePort();
      const enroll = ['--server', cp.url, '--enroll-token', (await cli('enroll-tokens', 'create')).token, '--trust-root', keys.rootPublicKey];
      const agent = new AgentProcess([...enroll, '--data-dir', dataDir, '--api-port', String(port), '--probation-ms', '100', ...extra], { FLOTILLA_AGENT_LOG_LEVEL: 'warn' }).start();
      agents.push(agent);
      await waitFor(async () => (await api(port, 'GET', '/v1/status').catch(() => ({ body: {} }))).body.mqtt?.connected, 'agent connected', 60_000, 100);
      return { agent, port };
    };

    // Idle: the first start (enrollment) and restarts on the same data dir, each read after it settled.
    const idleDir = path.join(dir, 'agent-idle');
    const idle: Rss[] = [];
    let native: string[] = [];
    let heap = { heapUsedMB: 0, heapTotalMB: 0, externalMB: 0 };
    for (let i = 0; i < RESTARTS; i++) {
      const { agent, port } = await startAgent(idleDir);
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      idle.push(await rssOf(agent.child!.pid!));
      const status = (await api(port, 'GET', '/v1/status')).body;
      native = status.memory.native ?? ['(not reported)'];
      heap = status.memory;
      await agent.stop();
    }
    const idleRss = spread(idle.map((r) => r.rss));
    rows.push({ benchmark: 'agent RSS, no bundle (idle, settled)', value: idleRss.median, unit: 'MB', baseline: 'target', baselineValue: 90, ratio: idleRss.median / 90, note: `${idleRss.text}; min ${idleRss.min.toFixed(1)} max ${idleRss.max.toFixed(1)}` });
    rows.push({ benchmark: '  of which anonymous (heaps, malloc)', value: spread(idle.map((r) => r.anon)).median, unit: 'MB' });
    rows.push({ benchmark: '  of which file-backed (node, libraries)', value: spread(idle.map((r) => r.file)).median, unit: 'MB' });
    rows.push({ benchmark: '  main-thread heap used / total', value: heap.heapUsedMB, unit: 'MB', baseline: 'heap total', baselineValue: heap.heapTotalMB, note: `external ${heap.externalMB} MB; native code mapped: ${native.join(', ') || 'none'}` });

    // The MLP after 3k requests, in each thread mode.
    for (const thread of ['worker', 'main'] as const) {
      const loaded: Rss[] = [];
      for (let i = 0; i < Math.max(1, Math.ceil(RESTARTS / 2)); i++) {
        const { agent, port } = await startAgent(path.join(dir, `agent-${thread}-${i}`), ['--inference-thread', thread]);
        const deviceId = JSON.parse(await readFile(path.join(dir, `agent-${thread}-${i}`, 'identity.json'), 'utf8')).deviceId;
        await cli('deploy', 'tabular-demo@1', '--device', deviceId);
        await waitFor(async () => (await cp.api('GET', `/api/v1/devices/${deviceId}`)).body.updateState === 'active', 'active', 60_000, 100);
        for (let k = 0; k < N; k++) await post(port);
        await new Promise((r) => setTimeout(r, SETTLE_MS));
        loaded.push(await rssOf(agent.child!.pid!));
        if (i === 0) native = (await api(port, 'GET', '/v1/status')).body.memory.native ?? ['(not reported)'];
        await agent.stop();
      }
      const s = spread(loaded.map((r) => r.rss));
      rows.push({ benchmark: `agent RSS, MLP + 3k requests, ${thread} thread`, value: s.median, unit: 'MB', baseline: '90 MB + ort session (own process)', baselineValue: 90 + sessionMB, ratio: s.median / (90 + sessionMB), note: `${s.text}; anon ${mb(spread(loaded.map((r) => r.anon)).median)}; native: ${native.join(', ')}` });
    }
  } finally {
    for (const a of agents) await a.stop();
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
    keepAlive.destroy();
  }
  rows.push({ benchmark: 'load average at the end (1 min)', value: os.loadavg()[0], unit: '' });
  printTable('Agent memory', rows);
  return rows;
}
