// Summarises a .cpuprofile: self time by function (top N) and by where the code lives (aedes, mqtt,
// libsql, zod, drizzle, pino, prom-client, server/ingest, protocol/, node internals, GC, idle), as
// shares of the non-idle samples, and the inclusive time of the ingest path's functions (PROFILE_WATCH=a,b,c
// names others). `node --import tsx bench/profile-summary.ts <file> [top]`.
import { readFileSync } from 'node:fs';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

const [file, topArg] = process.argv.slice(2);
const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const self = new Map<number, number>();
for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0));

const area = (url: string, fn: string): string => {
  if (fn === '(idle)') return 'idle';
  if (fn === '(garbage collector)') return 'gc';
  if (fn === '(program)') return 'program';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  const own = /\/(server\/[^/]+|protocol\/[^/]+|bench|test\/helpers)\//.exec(url);
  if (own) return own[1];
  if (url.startsWith('node:')) return 'node:' + url.slice(5).split('/')[0];
  return url ? 'other' : '(native/builtin)';
};
const fnTotals = new Map<string, number>();
const areaTotals = new Map<string, number>();
let busy = 0;
for (const [id, us] of self) {
  const n = byId.get(id)!;
  const a = area(n.callFrame.url, n.callFrame.functionName);
  areaTotals.set(a, (areaTotals.get(a) ?? 0) + us);
  if (a !== 'idle') busy += us;
  const key = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.replace(/.*node_modules\//, '').replace(/.*\/ingest4\//, '')}:${n.callFrame.lineNumber + 1}`;
  fnTotals.set(key, (fnTotals.get(key) ?? 0) + us);
}
const wall = (p.endTime - p.startTime) / 1000;
console.log(`${file}: wall ${wall.toFixed(0)} ms, busy ${(busy / 1000).toFixed(0)} ms`);
const pct = (us: number) => ((100 * us) / busy).toFixed(1).padStart(5) + '%';
console.log('\nby area (self time, share of busy):');
for (const [a, us] of [...areaTotals].sort((x, y) => y[1] - x[1]).slice(0, 25)) console.log(`${pct(us)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${a}`);
console.log('\ntop functions (self):');
for (const [f, us] of [...fnTotals].sort((x, y) => y[1] - x[1]).slice(0, Number(topArg ?? 40))) console.log(`${pct(us)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${f}`);

// Inclusive time of the named functions (each sample counted once per name on its stack).
const parent = new Map<number, number>();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const watch = (process.env.PROFILE_WATCH ?? 'dispatch,acceptStats,acceptTelemetry,writeBatch,writeStats,writeTelemetry,loadBatchContext,upsertRollups,validateStatsMessage,fastWireStats,wireMatchesReference,validateTelemetryMessage,salvageOverflowedMoments,fastStatsMessage,fastTelemetryMessage,encodeSketch,readStoredSketch,mergeAllFeatureSetSketches,mergeFeatureSetSketches,checkSketchAgainstReference,parse,stringify,handle,_handlePublish,writeToStream,seen').split(',');
const incl = new Map<string, number>();
for (let i = 0; i < p.samples.length; i++) {
  const names = new Set<string>();
  for (let id: number | undefined = p.samples[i]; id !== undefined; id = parent.get(id)) names.add(byId.get(id)!.callFrame.functionName);
  for (const w of watch) if (names.has(w)) incl.set(w, (incl.get(w) ?? 0) + (p.timeDeltas[i] ?? 0));
}
console.log('\ninclusive (share of busy):');
for (const [w, us] of [...incl].sort((x, y) => y[1] - x[1])) console.log(`${pct(us)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${w}`);
