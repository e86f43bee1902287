// `npm run bench`: every benchmark, each printing a table against a baseline measured in the same run,
// with results written to bench/results/<name>.json. `npm run bench -- registry` runs one.
import { runRegistryBench } from './registry.bench.ts';
import { runOptimizeBench } from './optimize.bench.ts';
import { writeResults } from './lib.ts';

const suites: Record<string, () => Promise<unknown[]>> = {
  registry: runRegistryBench,
  optimize: runOptimizeBench,
};

const only = process.argv.slice(2);
for (const [name, run] of Object.entries(suites)) {
  if (only.length && !only.includes(name)) continue;
  const rows = await run();
  const file = await writeResults(name, rows as never);
  console.log(`\nwrote ${file}`);
}
