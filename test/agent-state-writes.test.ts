// How often one update writes the agent's state file (each write an atomic replace: temp file, fsync,
// rename, directory fsync; on a gateway, flash writes). Intermediate phases ride with the next write and
// verdicts with their terminal transition, so an update from desired to active writes it twice: the
// probation record before the bundle is installed, and the verdict with `active` (it was nine writes).
// Real control plane, real MQTT, real onnxruntime, the agent in this process.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { STATE_FILE } from '../agent/state-store.ts';
import { waitFor, type TestBundle } from '../agent/testing/harness.ts';
import { AgentLab } from './helpers/agent-lab.ts';
import { gemmModel } from './helpers/models.ts';

describe('agent: state file writes per update', { timeout: 90_000 }, () => {
  let lab: AgentLab;
  let A: TestBundle;
  let B: TestBundle;

  const saved = async () => JSON.parse(await readFile(path.join(lab.dataDir, STATE_FILE), 'utf8'));
  /** Until state.json itself says `active` for this counter (the write has landed, not only begun). */
  const activeAt = (counter: number) =>
    waitFor(async () => {
      const last = (await saved().catch(() => null))?.transitions.at(-1);
      return last?.state === 'active' && last.counter === counter;
    }, `counter ${counter} active on disk`, 30_000);

  before(async () => {
    // Monitoring messages take a state write each (their seq): none within this test.
    lab = await AgentLab.start({ prefix: 'flotilla-agent-writes-', agent: { telemetryIntervalS: 3600, statsWindowS: 86_400 } });
    A = await lab.bundle(gemmModel({ seed: 1 }));
    B = await lab.bundle(gemmModel({ seed: 2 }));
  });

  after(async () => {
    await lab?.stop();
  });

  test('desired → active writes state.json twice, and every phase is on disk at the end', async () => {
    const first = lab.agent.state!.writes;
    await lab.deploy(A, { counter: 1 }); // the first one also stores the key list
    await activeAt(1);
    // The new key list rides with the update's own writes (it used to cost a write of its own).
    assert.equal(lab.agent.state!.writes - first, 2, 'state.json writes for the first update, key list included');
    assert.equal((await saved()).keylist?.signed.version, 1, 'the key list is on disk');
    const before = lab.agent.state!.writes;
    await lab.deploy(B, { counter: 2 });
    await activeAt(2);
    assert.equal(lab.agent.state!.writes - before, 2, 'state.json writes for one update');
    const s = await saved();
    const phases = s.transitions.filter((t: { counter?: number }) => t.counter === 2).map((t: { state: string }) => t.state);
    assert.deepEqual(phases, ['downloading', 'verifying', 'staging', 'activating', 'probation', 'active']);
    assert.equal(s.highWaterCounter, 2);
    assert.equal(s.probation, null);
    assert.equal(s.handled.at(-1).outcome, 'active');
  });

  test('a refused manifest writes it once (verdict and `failed` together)', async () => {
    const before = lab.agent.state!.writes;
    // Counter 1 again (below the floor, a new manifest: another expiry): refused as a rollback.
    await lab.deploy(A, { counter: 1, expiresAt: new Date(Date.now() + 7200e3) });
    const s = await waitFor(async () => {
      const d = await saved();
      return d.transitions.at(-1)?.state === 'failed' ? d : undefined;
    }, 'refusal on disk', 15_000);
    assert.equal(lab.agent.state!.writes - before, 1);
    assert.equal(s.handled.at(-1).counter, 1);
  });
});
