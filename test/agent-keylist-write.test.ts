// A newer key list is trusted in memory and written at once, but a desired message's verdict does not
// wait for that write (issue 16: in a simulator's 10,000-device fan-out the fsynced replace queued behind
// every other device's file operations and held each device's verification). What stays strict: nothing
// irreversible happens before a durable write that holds the key list — no bundle is installed while it
// is held, and a refusal's verdict carries it. State writes are held here by gating the agent's own
// StateStore (a slow disk); real control plane, real MQTT, real onnxruntime, the agent in this process.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { STATE_FILE, type AgentState } from '../agent/state-store.ts';
import { waitFor, type TestBundle } from '../agent/testing/harness.ts';
import { AgentLab } from './helpers/agent-lab.ts';
import { gemmModel } from './helpers/models.ts';

describe('agent: the key list write does not hold the verdict', { timeout: 240_000 }, () => {
  let lab: AgentLab;
  let A: TestBundle;
  /** Set while state writes are held: update() applies the change in memory, then waits for release. */
  let held: { release: () => void; done: Promise<void> } | null = null;

  const saved = async (): Promise<AgentState> => JSON.parse(await readFile(path.join(lab.dataDir, STATE_FILE), 'utf8'));
  const holdWrites = () => {
    let release!: () => void;
    held = { release: () => release(), done: new Promise<void>((r) => (release = r)) };
  };

  before(async () => {
    lab = await AgentLab.start({ prefix: 'flotilla-agent-keylist-', agent: { telemetryIntervalS: 3600, statsWindowS: 86_400 } });
    const store = lab.agent.state!;
    const update = store.update.bind(store);
    store.update = async (change) => {
      if (!held) return update(change);
      store.note(change); // in memory now, as update() does
      await held.done;
      return update(() => {});
    };
    A = await lab.bundle(gemmModel({ seed: 1 }));
  });

  after(async () => {
    held?.release();
    await lab?.stop();
  });

  test('the first manifest is verified and its download starts while the key list is not on disk yet; nothing is installed until it is', async () => {
    holdWrites();
    try {
      await lab.deploy(A, { counter: 1 });
      await waitFor(() => lab.agent.reporter!.desiredCounter === 1, 'manifest 1 accepted while the key list write is held', 60_000);
      // The update goes on to its first durable write (the probation record before installing) and waits there.
      await waitFor(() => lab.agent.reporter!.current === 'activating', 'update waiting to install', 60_000);
      assert.equal(lab.agent.state!.get().keylist?.signed.version, 1, 'trusted in memory');
      assert.equal((await saved().catch(() => null))?.keylist ?? null, null, 'not on disk yet');
      assert.equal(existsSync(path.join(lab.dataDir, 'current')), false, 'nothing installed before the key list is on disk');
    } finally {
      held!.release();
      held = null;
    }
    await waitFor(async () => (await saved().catch(() => null))?.transitions.at(-1)?.state === 'active', 'active on disk', 60_000);
    assert.equal((await saved()).keylist?.signed.version, 1);
  });

  test('a refused manifest that brings a newer key list records the list with its verdict', async () => {
    lab.trust.rotate();
    // Another device's manifest under key list v2: refused (WRONG_DEVICE), the list is still kept.
    await lab.publish(lab.trust.bundleManifest('dev_someoneelse', A, { counter: 2 }));
    const s = await waitFor(async () => {
      const d = await saved().catch(() => null);
      return d?.transitions.at(-1)?.state === 'failed' ? d : undefined;
    }, 'refusal on disk', 60_000);
    assert.equal(s.lastError?.code, 'WRONG_DEVICE');
    assert.equal(s.keylist?.signed.version, 2, 'the newer list is on disk with the verdict');
  });
});
