// Desired-state fan-out, server side (issue 16): a cohort deployment to N approved devices through the
// API of an in-process control plane with the embedded broker — sign a manifest per device (its own id
// and counter), store the rows, publish each retained on its `desired` topic — without agents, so the
// server's share is measured apart from the devices'. Two deployments per size: the first creates the
// rows, the second replaces them (another bundle). Baseline in the same run: signing the same N
// manifests alone (the per-device work no implementation can skip), so the ratio says how much the
// rest (reads, rows, publishing) adds, and whether it grows with N.
// Devices are inserted directly as approved rows; BENCH_FANOUT_DEVICES (default "2000,10000").
// Then the same with devices that receive it: BENCH_FANOUT_SIM_DEVICES (default 2000; 0: skip) simulated
// devices (simulator/, the agent's own code in other processes, at most 5,000 per process) enroll and
// connect, and two deployments to their cohort are timed from the request until every device's agent
// has verified its manifest (the lowest accepted counter across the fleet passed the one before, polled
// every 100 ms), against the same number of bare signatures in the same run. BENCH_SIM_CPU_PROFILE=<dir>: a
// CPU profile of each simulator process over each of those windows (simulator/cpu-profile-toggle.ts);
// BENCH_CPU_PROFILE=<dir>, one of the control plane's thread (bench/cpu-profile.ts).
// The devices run with a download splay (BENCH_FANOUT_SPLAY, default 300s; agent --download-splay-ms)
// far longer than that window, so it measures receiving and verifying the manifest, not the downloads
// that follow it: on a real fleet each device has its own CPU, in a simulator 5,000 share one core.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sign } from 'node:crypto';
import { canonicalBytes } from '../firmware-bundles/canonical-json.ts';
import { generateKeyPair, loadPrivateKey } from '../firmware-bundles/keys.ts';
import { createManifest } from '../firmware-bundles/manifest.ts';
import { hashDeviceSecret } from '../server/auth/device-credentials.ts';
import type { ControlPlane } from '../server/control-plane.ts';
import { devices } from '../server/db/schema.ts';
import { DEFAULT_AGENT_CONFIG } from '../server/settings/effective-settings.ts';
import { parseDurationMs } from '../simulator/options.ts';
import { SimulatorProcess } from '../simulator/simulator-process.ts';
import { startBenchPlane, twoTrustedBundles, type BenchApi } from './bench-plane.ts';
import { profiled } from './cpu-profile.ts';
import { printTable, type BenchRow } from './lib.ts';

const SIZES = (process.env.BENCH_FANOUT_DEVICES ?? '2000,10000').split(',').filter(Boolean).map(Number);
const SIM_DEVICES = Number(process.env.BENCH_FANOUT_SIM_DEVICES ?? 2000);
const PER_PROCESS = 5_000;
const SPLAY = process.env.BENCH_FANOUT_SPLAY ?? '300s';
const load = () => os.loadavg()[0].toFixed(0);

export async function runFanoutBench(): Promise<BenchRow[]> {
  const { plane, dir, api } = await startBenchPlane('flotilla-fanout-bench-');
  const rows: BenchRow[] = [];
  // Each row is shown as soon as it is measured: a run on a loaded machine may be cut short.
  const tell = (r: BenchRow) => {
    rows.push(r);
    console.error(`fanout: ${r.benchmark}: ${r.value.toFixed(2)} ${r.unit} (baseline ${r.baselineValue?.toFixed(2)}; ${r.note})`);
  };
  try {
    const { root, bundles } = await twoTrustedBundles(api, 'fan');
    const [b1, b2] = bundles.map((b) => b.id);
    const credentialHash = hashDeviceSecret('bench-secret');
    for (const n of SIZES) {
      const cohort = `fan${n}`;
      await api('POST', '/api/v1/cohorts', { name: cohort, selector: `fleet=${cohort}` });
      const ids = Array.from({ length: n }, (_, i) => `dev_${cohort}x${String(i).padStart(6, '0')}`);
      for (let i = 0; i < n; i += 500) {
        await plane.db.insert(devices).values(ids.slice(i, i + 500).map((id) => ({ id, name: id, status: 'approved' as const, labels: { fleet: cohort }, facts: {}, credentialHash, approvedAt: new Date().toISOString() })));
      }
      // Baseline: the N Ed25519 signatures alone, over manifests of the same shape (canonical bytes made beforehand).
      const key = loadPrivateKey(generateKeyPair().privateKeyPem);
      const expiresAt = new Date(Date.now() + 86400e3);
      const payloads = ids.map((deviceId) => canonicalBytes(createManifest({ deviceId, cohort, bundle: { id: b1, name: 'fan', model: { name: 'fan', version: 1 } }, files: ['model.onnx', 'bundle.json'].map((p) => ({ path: p, sha256: '0'.repeat(64), size: 1 })), counter: 1, keylistVersion: 1, expiresAt, agentConfig: DEFAULT_AGENT_CONFIG as never })));
      let t = performance.now();
      for (const bytes of payloads) sign(null, bytes, key);
      const signMs = performance.now() - t;
      for (const [k, bundle] of [['first', b1], ['second', b2]] as const) {
        const l0 = load();
        t = performance.now();
        // BENCH_CPU_PROFILE=<dir>: a profile of this thread (the control plane's) per deployment.
        const dep = await profiled(`fanout-${n}-${k}`, () => api('POST', '/api/v1/deployments', { bundle, cohort }));
        const ms = performance.now() - t;
        if (dep.devices.length !== n) throw new Error(`deployment reached ${dep.devices.length} of ${n} devices`);
        tell({ benchmark: `cohort deployment to ${n} devices (${k}): request to response, published`, value: ms / 1000, unit: 's', baseline: `${n} Ed25519 signatures alone`, baselineValue: signMs / 1000, ratio: ms / signMs, note: `${((ms / n) * 1000).toFixed(0)} µs/device; load ${l0}→${load()}` });
      }
    }
    if (SIM_DEVICES > 0) await simulatedFanout(plane, api, root.publicKey, b1, b2, tell);
  } finally {
    await plane.stop();
    await rm(dir, { recursive: true, force: true });
  }
  printTable('Desired-state fan-out (in-process control plane, embedded broker; simulated devices in their own processes)', rows);
  return rows;
}

async function until(fn: () => boolean, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (fn()) return true;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return false;
}

/** Two deployments to SIM_DEVICES connected simulated devices, each timed until every device verified it. */
async function simulatedFanout(plane: ControlPlane, api: BenchApi, rootPublicKey: string, b1: string, b2: string, tell: (r: BenchRow) => void): Promise<void> {
  const n = SIM_DEVICES;
  await api('POST', '/api/v1/cohorts', { name: 'simfan', selector: 'fleet=simfan' });
  const token = (await api('POST', '/api/v1/enroll-tokens', { labels: { fleet: 'simfan' }, maxUses: n })).token as string;
  // Devices' state on tmpfs where there is one: thousands of agents' outboxes would otherwise measure the disk.
  const simRoot = await mkdtemp(path.join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'flotilla-fanout-sim-'));
  const sims: SimulatorProcess[] = [];
  const total = (k: 'connected' | 'active' | 'failed' | 'startFailures') => sims.reduce((s, x) => s + (x.last?.[k] ?? 0), 0);
  const counterMin = () => Math.min(...sims.map((x) => x.last?.counterMin ?? 0));
  const simCpuMs = () => sims.reduce((s, x) => s + (x.last?.cpuMs ?? 0), 0);
  const counterMax = () => Math.max(...sims.map((x) => x.last?.counterMax ?? 0));
  const profileDir = process.env.BENCH_SIM_CPU_PROFILE;
  if (profileDir) process.env.FLOTILLA_SIM_CPU_PROFILE = path.resolve(profileDir);
  const toggleProfiles = () => profileDir && sims.forEach((x) => x.proc.kill('SIGUSR2'));
  try {
    for (let left = n, i = 0; left > 0; i++) {
      const k = Math.min(PER_PROCESS, left);
      sims.push(new SimulatorProcess(['--server', plane.httpUrl, '--enroll-token', token, '--trust-root', rootPublicKey, '--devices', String(k), '--name-prefix', `fan${i}-`, '--data-dir', path.join(simRoot, `sim${i}`), '--telemetry', '60s', '--stats', '300s', '--rows', '0', '--probation', '1s', '--download-splay', SPLAY, '--concurrency', '25', '--log-level', 'fatal', '--progress-every', '100ms']));
      left -= k;
    }
    const t0 = performance.now();
    // A device whose enrollment failed (e.g. timed out on a loaded machine) is not retried: the fleet is those connected.
    if (!(await until(() => total('connected') + total('startFailures') >= n, 15 * 60_000, 500))) throw new Error(`only ${total('connected')} of ${n} simulated devices connected: ${sims.map((x) => x.stderr.trim().split('\n').pop()).filter(Boolean)[0] ?? 'no error reported'}`);
    const connected = total('connected');
    console.error(`fanout: ${connected} of ${n} simulated devices connected in ${((performance.now() - t0) / 1000).toFixed(0)} s (${total('startFailures')} failed to start)`);
    const ids = Array.from({ length: connected }, (_, i) => `dev_simfan${String(i).padStart(6, '0')}`);
    const key = loadPrivateKey(generateKeyPair().privateKeyPem);
    const expiresAt = new Date(Date.now() + 86400e3);
    const payloads = ids.map((deviceId) => canonicalBytes(createManifest({ deviceId, cohort: 'simfan', bundle: { id: b1, name: 'fan', model: { name: 'fan', version: 1 } }, files: ['model.onnx', 'bundle.json'].map((p) => ({ path: p, sha256: '0'.repeat(64), size: 1 })), counter: 1, keylistVersion: 1, expiresAt, agentConfig: DEFAULT_AGENT_CONFIG as never })));
    let t = performance.now();
    for (const bytes of payloads) sign(null, bytes, key);
    const signMs = performance.now() - t;
    // BENCH_FANOUT_SIM_DEPLOYMENTS=1: the first only (the second waits for the whole fleet to be active first).
    const deployments = ([['first', b1], ['second', b2]] as const).slice(0, Number(process.env.BENCH_FANOUT_SIM_DEPLOYMENTS ?? 2));
    for (const [k, bundle] of deployments) {
      const before = counterMax();
      const l0 = load();
      const cpu0 = simCpuMs();
      toggleProfiles();
      t = performance.now();
      let responseS = 0;
      let s = 0;
      // BENCH_CPU_PROFILE=<dir>: the control plane's thread over the same window (its answer, then the devices' `reported`).
      const all = await profiled(`fanout-sim-${connected}-${k}`, async () => {
        await api('POST', '/api/v1/deployments', { bundle, cohort: 'simfan' });
        responseS = (performance.now() - t) / 1000;
        const done = await until(() => counterMin() > before, 5 * 60_000);
        s = (performance.now() - t) / 1000;
        return done;
      });
      toggleProfiles();
      // The simulated devices' own share (receiving, verifying, recording): on a real fleet each device has its own CPU.
      const deviceMs = (simCpuMs() - cpu0) / connected;
      tell({
        benchmark: `cohort deployment to ${connected} connected simulated devices (${k}): request until every device verified its manifest`,
        value: s,
        unit: 's',
        baseline: `${connected} Ed25519 signatures alone`,
        baselineValue: signMs / 1000,
        ratio: (s * 1000) / signMs,
        note: `${all ? '' : 'TIMED OUT; '}download splay ${SPLAY}; response after ${responseS.toFixed(2)} s; simulators' CPU ${deviceMs.toFixed(2)} ms/device meanwhile; load ${l0}→${load()}`,
      });
      // Each device downloads (after its splay) and activates the bundle; the next deployment starts on a quiet fleet.
      if (k !== deployments.at(-1)![0]) await until(() => total('active') + total('failed') >= connected, 10 * 60_000 + parseDurationMs('BENCH_FANOUT_SPLAY', SPLAY), 500);
    }
  } finally {
    await Promise.all(sims.map((x) => x.stop()));
    await rm(simRoot, { recursive: true, force: true });
  }
}
