// `npm run bench`: every benchmark, each printing a table against a baseline measured in the same run,
// with results written to bench/results/<name>.json. `npm run bench -- agent` runs one suite.
// Suites are imported lazily so running one does not load (or depend on) the others.
import { writeResults, type BenchRow } from './lib.ts';

const suites: Record<string, () => Promise<BenchRow[]>> = {
  registry: () => import('./registry.bench.ts').then((m) => m.runRegistryBench()),
  optimize: () => import('./optimize.bench.ts').then((m) => m.runOptimizeBench()),
  agent: () => import('./agent.bench.ts').then((m) => m.runAgentBench()),
  'agent-memory': () => import('./agent-memory.bench.ts').then((m) => m.runAgentMemoryBench()),
  'agent-api': () => import('./agent-api.bench.ts').then((m) => m.runAgentApiBench()),
  ingest: () => import('./ingest.bench.ts').then((m) => m.runIngestBench()),
  events: () => import('./events.bench.ts').then((m) => m.runEventsBench()),
  web: () => import('./web.bench.ts').then((m) => m.runWebBench()),
  reconnect: () => import('./reconnect.bench.ts').then((m) => m.runReconnectBench()),
  scale: () => import('./scale.bench.ts').then((m) => m.runScaleBench()),
  fanout: () => import('./fanout.bench.ts').then((m) => m.runFanoutBench()),
  shadow: () => import('./shadow.bench.ts').then((m) => m.runShadowBench()),
  'rollout-tick': () => import('./rollout-tick.bench.ts').then((m) => m.runRolloutTickBench()),
};

const only = process.argv.slice(2);
const unknown = only.filter((name) => !(name in suites));
if (unknown.length) {
  console.error(`unknown suite(s): ${unknown.join(', ')}; available: ${Object.keys(suites).join(', ')}`);
  process.exit(2);
}
for (const [name, run] of Object.entries(suites)) {
  if (only.length && !only.includes(name)) continue;
  const rows = await run();
  const file = await writeResults(name, rows);
  console.log(`\nwrote ${file}`);
}
