// How many `reported` documents a device publishes when a desired message arrives. A fan-out's first
// message brings a newer key list and a manifest: the key list used to be published on its own and the
// verdict (`downloading`, waiting out the splay) after its acknowledgement, two messages per device
// where the second says everything the first did. The reporter now publishes once the turn that made
// the changes is over: one document per desired message, with the key list version and the verdict.
// Real control plane, real MQTT, the agent in this process; the server's view through its own client.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { waitFor, type TestBundle } from '../agent/testing/harness.ts';
import { AgentLab } from './helpers/agent-lab.ts';
import { gemmModel } from './helpers/models.ts';

describe('agent: reported documents per desired message', { timeout: 90_000 }, () => {
  let lab: AgentLab;
  let A: TestBundle;
  const seen: any[] = [];

  before(async () => {
    // A splay far longer than the test: the update stays waiting after its verdict (no download messages).
    lab = await AgentLab.start({ prefix: 'flotilla-agent-reported-', agent: { telemetryIntervalS: 3600, statsWindowS: 86_400, downloadSplayMs: 600_000, updateTimeoutMs: 1_800_000 } });
    A = await lab.bundle(gemmModel({ seed: 1 }));
    await lab.observe(['reported'], (_c, msg) => seen.push(msg));
  });

  after(async () => {
    await lab?.stop();
  });

  /** Asks for one more document and waits until it arrived: every document published before it has too (one client's messages stay in order). */
  const settled = async () => {
    const n = seen.length;
    lab.agent.reporter!.flush();
    await waitFor(() => seen.length > n, 'the marker document', 15_000);
    return seen.length;
  };

  test("a fan-out's first desired message (new key list + manifest) is reported in one document", async () => {
    await waitFor(() => lab.agent.session?.connected, 'agent connected', 15_000);
    const before = await settled();
    await lab.deploy(A, { counter: 1 });
    await waitFor(() => seen.slice(before).some((m) => m.desired?.counter === 1), 'the verdict reported', 15_000);
    const after = seen.slice(before, seen.findIndex((m, i) => i >= before && m.desired?.counter === 1) + 1);
    assert.equal(after.length, 1, `documents published for one desired message: ${JSON.stringify(after.map((m) => [m.state, m.keylistVersion ?? null]))}`);
    assert.equal(after[0].keylistVersion, 1, 'the key list it brought');
    assert.equal(after[0].state, 'downloading');
    assert.ok(after[0].downloadWaitUntil, 'waiting out the splay');
  });
});
