// The fleet simulator against a real control plane: two simulator processes (`npm run simulate`,
// 40 + 10 devices) enroll with one token, receive one deployment over MQTT, verify its signatures and
// smoke vectors with the agent's own code, report active, and their telemetry and stats windows reach
// the database. The second runs with --fail-updates 50%: exactly the devices it picks (a stable hash
// of the name) report the update failed with MODEL_LOAD_FAILED; the others go active.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { like, sql } from 'drizzle-orm';
import { waitFor } from '../agent/testing/harness.ts';
import { SimulatorProcess } from '../simulator/simulator-process.ts';
import { devices, statsWindows, telemetry } from '../server/db/schema.ts';
import { failsUpdates } from '../simulator/fleet.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { generateRows } from './helpers/device-stats.ts';
import { gemmModel, modelOutputs } from './helpers/models.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');
const MODEL = 'tabular-demo';

describe('fleet simulator: simulated devices run the agent\'s code paths against a real control plane', { timeout: 170_000 }, () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  const sims: SimulatorProcess[] = [];
  const cli = async (...args: string[]) => {
    const r = await runCli(['--json', ...args], env);
    assert.equal(r.code, 0, `flotilla ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const named = async (prefix: string) => cp.plane.db.select({ id: devices.id, name: devices.name, online: devices.online, updateState: devices.updateState, reported: devices.reported }).from(devices).where(like(devices.name, `${prefix}%`));

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-sim-test-'));
    cp = await startControlPlane({ driftCron: 'off', ingestFlushMs: 100 });
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
  });
  after(async () => {
    await Promise.all(sims.map((s) => s.stop()));
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('bad flags: one line and exit code 2', async () => {
    const bad = new SimulatorProcess(['--devices', '3', '--server', cp.url, '--fail-updates', '150%']);
    assert.equal(await bad.exited, 2);
    assert.match(bad.stderr, /^simulate: invalid --fail-updates: .*150%/m);
    const wait = new SimulatorProcess(['--devices', '3', '--server', cp.url, '--connect-wait', 'soon']);
    assert.equal(await wait.exited, 2);
    assert.match(wait.stderr, /^simulate: invalid --connect-wait: .*"soon"/m);
  });

  test('two simulators enroll, verify and activate one deployment; telemetry and stats windows reach the server; --fail-updates fails exactly its devices', async () => {
    const keys = await cli('keys', 'init', '--root-key', path.join(dir, 'root.key'));
    const model = gemmModel({ seed: 1 });
    await writeFile(path.join(dir, 'model.onnx'), model);
    await cli('models', 'push', path.join(dir, 'model.onnx'), '--name', MODEL);
    const refRows = generateRows(2000, 1).map((r) => r.values);
    const outputs = await modelOutputs(model, refRows);
    const ref = await cp.api('POST', `/api/v1/models/${MODEL}/versions/1/reference`, { json: refRows.map((v, i) => ({ ...v, outputs: outputs[i] })) });
    assert.equal(ref.status, 201, JSON.stringify(ref.body));
    await cli('bundles', 'build', `${MODEL}@1`, '--def', BUNDLE_DEF);
    await cli('cohorts', 'create', 'sim', '--selector', 'site=sim');
    const token = (await cli('enroll-tokens', 'create', '--labels', 'site=sim', '--max-uses', '50')).token;

    const common = ['--server', cp.url, '--enroll-token', token, '--trust-root', keys.rootPublicKey, '--telemetry', '1s', '--stats', '2s', '--probation', '500ms', '--rows', '2'];
    // simA connects in bounded batches (five at a time, each waiting for its session), as the shadow bench's 1,000 devices do.
    sims.push(new SimulatorProcess(['--devices', '40', '--name-prefix', 'simA-', '--data-dir', path.join(dir, 'a'), '--concurrency', '5', '--connect-wait', '10s', ...common]));
    sims.push(new SimulatorProcess(['--devices', '10', '--name-prefix', 'simB-', '--data-dir', path.join(dir, 'b'), '--fail-updates', '50%', ...common]));
    await waitFor(async () => (await named('sim')).filter((d) => d.online).length === 50, 'all 50 simulated devices online on the server', 90_000, 200);
    await waitFor(() => sims.every((s) => s.last && s.last.connected === s.last.devices), 'the progress lines count every device connected', 15_000);

    await cli('deploy', `${MODEL}@1`, '--cohort', 'sim');
    const failing = new Set(Array.from({ length: 10 }, (_, i) => `simB-${i}`).filter((n) => failsUpdates(n, 0.5)));
    assert.ok(failing.size > 0 && failing.size < 10, 'the 50% share picks some but not all of 10 devices');
    await waitFor(async () => (await named('sim')).every((d) => d.updateState === (failing.has(d.name!) ? 'failed' : 'active')), 'every simulated device reports its terminal state', 90_000, 200);

    for (const d of await named('sim')) {
      const reported = d.reported as { state: string; active: { counter: number } | null; lastError: { code: string } | null };
      if (failing.has(d.name!)) {
        assert.equal(reported.lastError?.code, 'MODEL_LOAD_FAILED', d.name!);
        assert.equal(reported.active, null);
      } else assert.ok(reported.active && reported.active.counter > 0, `${d.name} runs the signed bundle`);
    }
    await waitFor(() => sims[0].last?.active === 40 && sims[1].last?.failed === failing.size, 'the progress lines count active and failed devices', 15_000);

    // Monitoring: active devices send requests, so telemetry counts inferences and stats windows hold rows.
    const activeIds = new Set((await named('sim')).filter((d) => !failing.has(d.name!)).map((d) => d.id));
    await waitFor(async () => {
      const t = await cp.plane.db.select({ deviceId: telemetry.deviceId, n: sql<number>`sum(${telemetry.inferences})` }).from(telemetry).groupBy(telemetry.deviceId);
      const s = await cp.plane.db.select({ deviceId: statsWindows.deviceId, rows: sql<number>`sum(${statsWindows.rows})` }).from(statsWindows).groupBy(statsWindows.deviceId);
      const withInferences = t.filter((r) => activeIds.has(r.deviceId) && Number(r.n) > 0).length;
      const withRows = s.filter((r) => activeIds.has(r.deviceId) && Number(r.rows) > 0).length;
      return withInferences === activeIds.size && withRows === activeIds.size;
    }, 'telemetry with inferences and stats windows with rows from every active device', 60_000, 250);
    assert.ok(sims.every((s) => (s.last?.published ?? 0) > 0));

    // A clean stop announces offline (not the last will of a dropped connection).
    for (const s of sims) assert.equal(await s.stop(), 0, s.stderr);
    await waitFor(async () => (await named('sim')).every((d) => !d.online), 'every simulated device offline after the simulators stopped', 30_000, 200);
  });
});
