// The event stream on a real control plane with a real agent process over real MQTT: the agent's
// enrollment, presence and update states arrive on GET /api/v1/events as it is deployed to; a
// reconnect with Last-Event-ID gets exactly the events it missed; the kind filter holds; tokens are
// checked; a second control plane on the same database file serves the same stream.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { AgentProcess, freePort, REPO, waitFor } from '../agent/testing/harness.ts';
import { DesiredMessage } from '../protocol/messages/desired.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';
import { SseStream } from './helpers/sse.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');

describe('event stream', () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  let agent: AgentProcess;
  let deviceId: string;
  let bundleId: string;
  let enrollToken: string;
  const streams: SseStream[] = [];
  const open = async (query = '', token: string | null = cp.adminToken, headers: Record<string, string> = {}, base = cp.url) => {
    const s = await SseStream.open(`${base}/api/v1/events${query}`, token, headers);
    streams.push(s);
    return s;
  };
  const cli = async (...args: string[]) => {
    const r = await runCli(['--json', ...args], env);
    assert.equal(r.code, 0, `flotilla ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };

  before(async () => {
    cp = await startControlPlane({ eventsPollMs: 50, eventsKeepAliveMs: 300 });
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-events-'));
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
  });
  after(async () => {
    await Promise.all(streams.map((s) => s.close()));
    await agent?.stop();
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('a real agent enrolling, coming online and taking a deployment shows up live, in order', async () => {
    const keys = await cli('keys', 'init', '--root-key', path.join(dir, 'root.key'));
    await writeFile(path.join(dir, 'v1.onnx'), gemmModel({ seed: 1 }));
    assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel({ seed: 1 }) as unknown as BodyInit })).status, 201);
    bundleId = (await cli('bundles', 'build', 'tab@1', '--def', BUNDLE_DEF)).id;
    assert.equal((await cp.api('POST', '/api/v1/cohorts', { json: { name: 'lab', selector: 'site=lab' } })).status, 201);
    const token = (enrollToken = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'lab' } } })).body.token);

    const live = await open('?kind=device,deployment');
    assert.equal(live.status, 200);
    agent = new AgentProcess(
      ['--server', cp.url, '--enroll-token', token, '--data-dir', path.join(dir, 'agent'), '--api-port', String(await freePort()), '--trust-root', keys.rootPublicKey, '--probation-ms', '200'],
      { FLOTILLA_AGENT_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG ?? 'warn' },
    ).start();
    const enrolled = await live.waitFor((es) => es.find((e) => e.type === 'device.enrolled'), 'device.enrolled');
    deviceId = enrolled.subject;
    assert.deepEqual(enrolled.data, { status: 'approved', labels: { site: 'lab' } });
    await live.waitFor((es) => es.find((e) => e.type === 'device.online' && e.subject === deviceId), 'device.online');

    const dep = await cp.api('POST', '/api/v1/deployments', { json: { bundle: bundleId, cohort: 'lab' } });
    assert.equal(dep.status, 201, JSON.stringify(dep.body));
    const active = await live.waitFor((es) => es.find((e) => e.type === 'device.update' && e.data.state === 'active' && e.data.bundleId === bundleId), 'device.update active', 60_000);
    assert.equal(active.subject, deviceId);
    assert.equal(active.data.modelVersion, 'tab@1');

    const created = live.events.find((e) => e.type === 'deployment.created');
    assert.deepEqual(created?.data, { deploymentId: dep.body.id, bundleId, target: { kind: 'cohort', name: 'lab' }, devices: 1 });
    // The agent's update path, one event per state it reported, ending active; the deployment came first.
    const states = live.events.filter((e) => e.type === 'device.update' && e.subject === deviceId && e.id > created!.id).map((e) => e.data.state);
    // The agent sends its latest `reported` once the previous publish is acknowledged, so a fast update may skip
    // intermediate states; what it did report arrives in order, at least one working state before `active`.
    const UPDATE_STATES = ['downloading', 'verifying', 'staging', 'activating', 'probation', 'active'];
    assert.ok(states.length >= 2 && states.every((st, i) => i === 0 || UPDATE_STATES.indexOf(st) >= UPDATE_STATES.indexOf(states[i - 1])), states.join(' → '));
    assert.equal(states.at(-1), 'active');
    // Ids increase; each message's SSE id and event name match its JSON; only the kinds asked for.
    live.events.forEach((e, i) => {
      if (i) assert.ok(e.id > live.events[i - 1].id);
      assert.equal(live.fields[i].id, String(e.id));
      assert.equal(live.fields[i].event, e.kind);
      assert.ok(['device', 'deployment'].includes(e.kind), e.type);
    });
    // What the stream showed is what the table holds.
    const recent = (await cp.api('GET', `/api/v1/events/recent?kind=device,deployment&since=${live.events[0].id - 1}&limit=1000`)).body.items;
    assert.deepEqual(
      recent.filter((e: { id: number }) => e.id <= active.id).map((e: { id: number }) => e.id),
      live.events.filter((e) => e.id <= active.id).map((e) => e.id),
    );
  });

  test('a stream resumed with Last-Event-ID (or since) gets exactly the events it missed, then live ones', async () => {
    const first = await open();
    await cp.api('PATCH', `/api/v1/devices/${deviceId}/labels`, { json: { set: { step: 'a' } } });
    const seen = await first.waitFor((es) => es.find((e) => e.type === 'device.labels'), 'first labels event');
    await first.close();
    // Missed while disconnected: three relabels (and whatever the agent reports meanwhile).
    for (const step of ['b', 'c', 'd']) await cp.api('PATCH', `/api/v1/devices/${deviceId}/labels`, { json: { set: { step } } });
    const missed = (await cp.api('GET', `/api/v1/events/recent?since=${seen.id}&limit=1000`)).body.items as Array<{ id: number; type: string; data: any }>;
    assert.deepEqual(
      missed.filter((e) => e.type === 'device.labels').map((e) => e.data.labels.step),
      ['b', 'c', 'd'],
    );

    const resumed = await open('', cp.adminToken, { 'last-event-id': String(seen.id) });
    const bySince = await open(`?since=${seen.id}`);
    for (const s of [resumed, bySince]) {
      await s.waitFor((es) => es.length >= missed.length, `${missed.length} missed events`);
      assert.deepEqual(s.events.slice(0, missed.length).map((e) => e.id), missed.map((e) => e.id));
    }
    // …and the stream goes on live after the replay.
    await cp.api('PATCH', `/api/v1/devices/${deviceId}/labels`, { json: { set: { step: 'e' } } });
    const liveOne = await resumed.waitFor((es) => es.find((e) => e.type === 'device.labels' && e.data.labels.step === 'e'), 'live event after replay');
    assert.equal(resumed.events.filter((e) => e.id === liveOne.id).length, 1, 'no duplicates');
    assert.ok(resumed.events.every((e, i) => i === 0 || e.id > resumed.events[i - 1].id));
  });

  test('kind filter, keep-alives, bad parameters and tokens', async () => {
    const rollouts = await open('?kind=rollout');
    const all = await open();
    await cp.api('PATCH', `/api/v1/devices/${deviceId}/labels`, { json: { set: { step: 'f' } } });
    await all.waitFor((es) => es.find((e) => e.type === 'device.labels' && e.data.labels.step === 'f'), 'labels event on the unfiltered stream');
    // Nothing of kind rollout happened: that stream only ever got keep-alive comments.
    await rollouts.waitFor(() => rollouts.comments.includes('keep-alive'), 'a keep-alive comment');
    assert.deepEqual(rollouts.events, []);
    const onlyDevice = (await cp.api('GET', '/api/v1/events/recent?kind=device&limit=1000')).body.items as Array<{ kind: string }>;
    assert.ok(onlyDevice.length > 0 && onlyDevice.every((e) => e.kind === 'device'));

    const badKind = await open('?kind=device,weather');
    assert.equal(badKind.status, 400);
    assert.match(badKind.body.error.message, /unknown event kind\(s\) weather/);
    const badId = await open('', cp.adminToken, { 'last-event-id': 'yesterday' });
    assert.equal(badId.status, 400);

    const none = await open('', null);
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'unauthorized');
    const wrong = await open('', 'flt_not-a-token');
    assert.equal(wrong.status, 401);
    assert.equal((await cp.api('GET', '/api/v1/events/recent', { token: null })).status, 401);
    // Every role may read the fleet, so a viewer follows the stream too.
    const viewer = (await cp.api('POST', '/api/v1/tokens', { json: { name: 'screen', role: 'viewer' } })).body.token;
    const asViewer = await open('?kind=device', viewer);
    assert.equal(asViewer.status, 200);
    // A revoked token is refused.
    const tokens = (await cp.api('GET', '/api/v1/tokens')).body.tokens as Array<{ id: string; name: string }>;
    await cp.api('DELETE', `/api/v1/tokens/${tokens.find((t) => t.name === 'screen')!.id}`);
    assert.equal((await open('', viewer)).status, 401);
  });

  test('a second control plane on the same database file serves the same stream', async () => {
    // A replica shares the database and the key-encryption key (the first one generated it in its data dir).
    const second = await startControlPlane({ dbUrl: cp.plane.config.dbUrl, keyEncryptionKeyFile: path.join(cp.plane.config.dataDir, 'key-encryption.key'), schedulerEnabled: false, driftCron: 'off', eventsPollMs: 50 });
    try {
      const a = await open('?kind=device');
      const b = await open('?kind=device', cp.adminToken, {}, second.url);
      assert.equal(b.status, 200);
      // A change made through the first replica appears on both streams with the same id.
      await cp.api('PATCH', `/api/v1/devices/${deviceId}/labels`, { json: { set: { step: 'g' } } });
      // …and one made through the second, too.
      await second.api('PATCH', `/api/v1/devices/${deviceId}/labels`, { token: cp.adminToken, json: { set: { step: 'h' } } });
      const pick = (es: Array<{ type: string; data: any }>) => es.filter((e) => e.type === 'device.labels' && ['g', 'h'].includes(e.data.labels.step));
      await waitFor(() => pick(a.events).length === 2 && pick(b.events).length === 2, 'both label events on both streams', 20_000);
      assert.deepEqual(pick(b.events), pick(a.events));
      await b.close();
    } finally {
      await second.stop();
    }
  });

  test('flotilla events: readable lines, --json lines, --follow from --since, bad input', async () => {
    const recent = (await cp.api('GET', '/api/v1/events/recent?kind=device&limit=3')).body.items as Array<{ id: number; type: string; subject: string }>;
    const human = await runCli(['events', '--kind', 'device', '--limit', '3'], env);
    assert.equal(human.code, 0, human.stderr);
    const lines = human.stdout.trim().split('\n');
    assert.equal(lines.length, 3);
    lines.forEach((l, i) => assert.match(l, new RegExp(`#${recent[i].id}\\s+${recent[i].type.replace('.', '\\.')}\\s+${recent[i].subject}`)));
    const json = await runCli(['--json', 'events', '--kind', 'device', '--limit', '3'], env);
    assert.deepEqual(json.stdout.trim().split('\n').map((l) => JSON.parse(l).id), recent.map((e) => e.id));

    const bad = await runCli(['events', '--kind', 'weather'], env);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /unknown event kind\(s\) weather/);
    assert.equal(bad.stderr.trim().split('\n').length, 1);
    assert.equal((await runCli(['events', '--since', 'x'], env)).code, 2);

    // --follow --since: the events after that id, then new ones as they happen.
    const child = spawn(process.execPath, [path.join(REPO, 'bin', 'flotilla.js'), '--json', 'events', '--follow', '--kind', 'device', '--since', String(recent[0].id)], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const ids = () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l).id as number);
      await waitFor(() => ids().length >= 2, 'replayed events', 30_000);
      assert.deepEqual(ids().slice(0, 2), [recent[1].id, recent[2].id]);
      await cp.api('PATCH', `/api/v1/devices/${deviceId}/labels`, { json: { set: { step: 'cli' } } });
      await waitFor(() => out.includes('"step":"cli"'), 'the live event', 30_000);
    } finally {
      child.kill();
    }
  });

  test("a deployment's status counts what its devices report: the real agent active, a failing device with its reason", async () => {
    // A second device over real MQTT that fails every update with a reason, as an agent would report it.
    const enrolled = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: enrollToken, facts: { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' } } });
    assert.equal(enrolled.status, 201, JSON.stringify(enrolled.body));
    const failing = enrolled.body.deviceId as string;
    const client = await mqtt.connectAsync(cp.mqttUrl, { clientId: failing, username: failing, password: enrolled.body.mqtt.password, reconnectPeriod: 0 });
    try {
      client.on('message', (_t, payload) => {
        const { signed } = DesiredMessage.parse(JSON.parse(payload.toString())).manifest as unknown as { signed: { bundle: { id: string }; counter: number } };
        const at = new Date().toISOString();
        const report = { v: 1, at, agentVersion: '0.1.0', state: 'failed', active: null, desired: { bundleId: signed.bundle.id, counter: signed.counter }, lastError: { code: 'SMOKE_TEST_FAILED', message: 'smoke vector 0 differs', at }, transitions: [] };
        client.publishAsync(deviceTopic(failing, 'reported'), JSON.stringify(report), { qos: 1, retain: true }).catch(() => {}); // in flight when the test ends the client
      });
      await client.subscribeAsync(deviceTopic(failing, 'desired'), { qos: 1 });
      const dep = (await cp.api('POST', '/api/v1/deployments', { json: { bundle: bundleId, cohort: 'lab' } })).body;
      const status = async () => (await cp.api('GET', `/api/v1/deployments/${dep.id}/status`)).body;
      const st = await waitFor(async () => {
        const s = await status();
        return s.counts.active === 1 && s.counts.failed === 1 ? s : undefined;
      }, 'one device active, one failed', 60_000);
      assert.equal(Object.values(st.counts as Record<string, number>).reduce((a, b) => a + b, 0), 2);
      assert.deepEqual(st.target, { kind: 'cohort', name: 'lab' });
      const rows = Object.fromEntries(st.devices.map((d: { deviceId: string }) => [d.deviceId, d]));
      assert.equal(rows[deviceId].bundleId, bundleId);
      assert.equal(rows[deviceId].error, undefined);
      assert.deepEqual(rows[failing].error, { code: 'SMOKE_TEST_FAILED', message: 'smoke vector 0 differs' });
      // The counts agree with what each device reported.
      for (const [id, want] of [[deviceId, 'active'], [failing, 'failed']]) assert.equal((await cp.api('GET', `/api/v1/devices/${id}`)).body.updateState, want);
      // The first deployment no longer holds the agent: it moved on to this one.
      const first = (await cp.api('GET', '/api/v1/deployments?limit=10')).body.deployments.find((d: { id: string }) => d.id !== dep.id);
      assert.deepEqual((await cp.api('GET', `/api/v1/deployments/${first.id}/status`)).body.devices, []);
      assert.equal((await cp.api('GET', '/api/v1/deployments/dep_nope/status')).status, 404);

      const shown = await runCli(['deployments', 'show', dep.id], env);
      assert.equal(shown.code, 0, shown.stderr);
      assert.match(shown.stdout, /devices\s+active 1, failed 1/);
      assert.match(shown.stdout, new RegExp(`${failing}.*failed\\s+SMOKE_TEST_FAILED: smoke vector 0 differs`));
      const listed = await runCli(['--json', 'deployments'], env);
      const row = JSON.parse(listed.stdout).find((d: { id: string }) => d.id === dep.id);
      assert.deepEqual([row.active, row.failed, row.pending, row.updating], [1, 1, 0, 0]);
    } finally {
      await client.endAsync();
    }
  });
});
