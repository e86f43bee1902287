// Monitoring end to end, everything real: the control plane (ingest, drift, alerts, webhook), the CLI
// and two agent processes serving the demo tabular model (its reference profile set first, so the
// bundle carries the layout). Inputs shifted on 2 of 8 features → `flotilla drift` names exactly those
// two, an alert opens and a signed webhook arrives; the control plane goes down in the middle and one
// agent is killed -9 while offline, yet every row reaches the server exactly once (a resend is
// deduped); inputs back to normal → the alert closes. Agents run with 1 s telemetry and 2 s windows
// (local flags, which win over the server's agentConfig).
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { copyFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eq, sql } from 'drizzle-orm';
import { AgentProcess, api, freePort, waitFor } from '../agent/testing/harness.ts';
import { ControlPlane } from '../server/control-plane.ts';
import { statsWindows } from '../server/db/schema.ts';
import { createLogger } from '../server/logger.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { FEATURES, generateRows, type Row } from './helpers/device-stats.ts';
import { gemmModel, modelOutputs } from './helpers/models.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo');
const SECRET = 'e2e-webhook-secret';
const MODEL = 'tabular-demo';
/** The two shifted features, by a clear margin (several of their standard deviations). */
const SHIFT: Record<string, number> = { f3: 6, f5: 1.5 };
const ROWS_PER_BATCH = 250;

type Values = Record<string, number>;

function batch(n: number, seed: number, shifted: boolean): Values[] {
  return generateRows(n, seed).map((r: Row) => {
    const v = { ...r.values };
    if (shifted) for (const [f, d] of Object.entries(SHIFT)) v[f] += d;
    return v;
  });
}

describe('end to end: on-device statistics → drift → alert, through a broker outage', { timeout: 170_000 }, () => {
  let cp: TestPlane;
  let dir: string;
  let env: Record<string, string>;
  let hook: Server;
  const hooks: Array<{ headers: Record<string, string | string[] | undefined>; body: string }> = [];
  const agents: Array<{ proc: AgentProcess; port: number; dataDir: string; id: string; args: string[]; rowsSent: number; requests: number }> = [];
  const model = gemmModel({ seed: 1 });
  let seed = 100;

  const cli = async (...args: string[]) => {
    const r = await runCli(['--json', ...args], env);
    assert.equal(r.code, 0, `flotilla ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  /** Rows the server holds per device, and its stored windows. */
  const serverRows = async (deviceId: string) => {
    const [r] = await cp.plane.db.select({ rows: sql<number>`coalesce(sum(${statsWindows.rows}), 0)`, windows: sql<number>`count(*)` }).from(statsWindows).where(eq(statsWindows.deviceId, deviceId));
    return { rows: Number(r.rows), windows: Number(r.windows) };
  };
  const send = async (a: (typeof agents)[number], shifted: boolean, batches = 3) => {
    for (let i = 0; i < batches; i++) {
      const r = await api(a.port, 'POST', '/v1/predict', { features: batch(ROWS_PER_BATCH, seed++, shifted) });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      a.rowsSent += ROWS_PER_BATCH;
      a.requests++;
    }
  };
  const status = async (a: (typeof agents)[number]) => (await api(a.port, 'GET', '/v1/status')).body;
  const allDelivered = () => waitFor(async () => (await Promise.all(agents.map(async (a) => (await serverRows(a.id)).rows === a.rowsSent))).every(Boolean), 'every row on the server', 30_000);
  const delivered = (event: string) => waitFor(() => hooks.find((h) => h.headers['x-flotilla-event'] === event), `webhook ${event}`, 15_000);

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-e2e-mon-'));
    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        hooks.push({ headers: req.headers, body });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    cp = await startControlPlane({ driftCron: 'off', ingestFlushMs: 50, alertWebhookUrl: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`, alertWebhookSecret: SECRET });
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') };
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.proc.stop()));
    await cp?.stop();
    await new Promise((r) => hook.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  test('a version with a reference profile, a bundle carrying its layout, two agents serving it', async () => {
    const keys = await cli('keys', 'init', '--root-key', path.join(dir, 'root.key'));
    await writeFile(path.join(dir, 'model.onnx'), model);
    await cli('models', 'push', path.join(dir, 'model.onnx'), '--name', MODEL);
    const refRows = batch(4000, 1, false);
    const outputs = await modelOutputs(model, refRows);
    const ref = await cp.api('POST', `/api/v1/models/${MODEL}/versions/1/reference`, { json: refRows.map((v, i) => ({ ...v, outputs: outputs[i] })) });
    assert.equal(ref.status, 201, JSON.stringify(ref.body));
    const built = await cli('bundles', 'build', `${MODEL}@1`, '--def', BUNDLE_DEF);
    assert.deepEqual(Object.keys(built.definition.reference.layout.features), FEATURES, 'the bundle ships the reference layout');
    await cli('cohorts', 'create', 'lab', '--selector', 'site=lab');
    const token = (await cli('enroll-tokens', 'create', '--labels', 'site=lab', '--max-uses', '2')).token;
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const dataDir = path.join(dir, `agent-${i}`);
      const args = ['--data-dir', dataDir, '--api-port', String(port), '--probation-ms', '200', '--reconnect-min-ms', '100', '--reconnect-max-ms', '500', '--telemetry-interval-s', '1', '--stats-window-s', '2'];
      const proc = new AgentProcess(['--server', cp.url, '--enroll-token', token, '--trust-root', keys.rootPublicKey, ...args], { FLOTILLA_AGENT_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG ?? 'warn' }).start();
      agents.push({ proc, port, dataDir, id: '', args, rowsSent: 0, requests: 0 });
    }
    for (const a of agents) a.id = await waitFor(async () => (await status(a)).deviceId, 'agent enrolled', 30_000);
    await cli('deploy', `${MODEL}@1`, '--cohort', 'lab');
    await waitFor(async () => (await Promise.all(agents.map(async (a) => (await status(a)).update?.state === 'active'))).every(Boolean), 'both agents active', 60_000);
  });

  test('shifted inputs: drift on exactly the shifted features, an alert and a signed webhook; an outage and a kill -9 lose no row, a resend counts once', async () => {
    for (const a of agents) await send(a, true);
    await allDelivered();

    // The control plane goes away; the agents keep serving and keep their windows on disk.
    const { httpPort, mqttPort } = cp.plane;
    const config = cp.plane.config;
    await cp.plane.stop();
    for (const a of agents) await send(a, true);
    const [a0, a1] = agents;
    await waitFor(async () => (await Promise.all(agents.map(async (a) => {
      const { monitoring: m, mqtt: link } = await status(a);
      return !link.connected && m.stats.rows === a.rowsSent && m.stats.openRows === 0 && m.stats.stored === m.stats.windows;
    }))).every(Boolean), 'every window closed and stored in the outboxes while offline', 15_000);
    const outbox1 = path.join(a1.dataDir, 'outbox');
    const waiting = (await readdir(outbox1)).filter((f) => f.endsWith('.stats.json')).sort();
    assert.ok(waiting.length > 0, 'stats windows on disk');
    // kill -9 while offline: the closed windows are already on disk.
    await a1.proc.kill9();
    // A resend after a lost PUBACK, as the outbox would do it: the same message once more.
    const names = (await readdir(outbox1)).sort();
    const lastPos = Number(names.at(-1)!.slice(0, 12));
    await copyFile(path.join(outbox1, waiting[0]), path.join(outbox1, `${String(lastPos + 1).padStart(12, '0')}.stats.json`));

    const restarted = new ControlPlane({ ...config, httpPort, mqttPort }, createLogger('silent'));
    await restarted.start();
    cp.plane = restarted;
    a1.proc = new AgentProcess(a1.args, a1.proc.env).start();
    await allDelivered();
    await waitFor(async () => (await status(a1)).monitoring?.outbox.pending === 0, 'agent 1 outbox drained', 15_000);
    // The outbox is empty once the broker acknowledged; ingest writes (and counts) that batch a flush later.
    const duplicatesCounted = async () => {
      const metrics = await (await fetch(`${cp.url}/metrics`)).text();
      return Number(/flotilla_mqtt_messages_dropped_total\{channel="stats",reason="duplicate"\} (\d+)/.exec(metrics)?.[1] ?? 0) >= 1;
    };
    await waitFor(duplicatesCounted, 'the resent window was recognised as a duplicate', 15_000);
    for (const a of agents) assert.equal((await serverRows(a.id)).rows, a.rowsSent, 'each row counted exactly once');
    assert.equal((await serverRows(a0.id)).windows, (await status(a0)).monitoring.stats.windows, 'every window agent 0 closed is on the server');

    const report = await cli('drift', `${MODEL}@1`, '--cohort', 'lab', '--window', '1h');
    assert.equal(report.rows, agents.reduce((n, a) => n + a.rowsSent, 0));
    const drifted = report.features.filter((f: { drifted: boolean }) => f.drifted).map((f: { feature: string }) => f.feature).sort();
    assert.deepEqual(drifted, Object.keys(SHIFT).sort(), JSON.stringify(report.features.map((f: { feature: string; score: number }) => [f.feature, f.score])));
    const table = await runCli(['drift', `${MODEL}@1`, '--cohort', 'lab', '--window', '1h'], env);
    assert.match(table.stdout, /^f3\s+\S+\s+\S+\s+\S+\s+yes\b/m);
    assert.match(table.stdout, /^f0\s+\S+\s+\S+\s+\S+\s+no\b/m);

    const opened = await cp.api('POST', '/api/v1/drift/evaluate', { json: { model: `${MODEL}@1`, cohort: 'lab', window: '1h' } });
    assert.equal(opened.status, 200, JSON.stringify(opened.body));
    assert.equal(opened.body.evaluations[0].transition, 'opened');
    const h = await delivered('alert.opened');
    assert.equal(h.headers['x-flotilla-signature'], 'sha256=' + createHmac('sha256', SECRET).update(h.body).digest('hex'));
    assert.deepEqual(JSON.parse(h.body).alert.features.filter((f: { feature: string }) => (FEATURES as readonly string[]).includes(f.feature)).map((f: { feature: string }) => f.feature).sort(), Object.keys(SHIFT).sort());

    // Telemetry of agent 0 (never restarted): every request it answered.
    await waitFor(async () => (await cp.api('GET', `/api/v1/telemetry?device=${a0.id}&window=15m`)).body.inferences === a0.requests, 'telemetry counts agent 0\'s requests', 15_000);
  });

  test('inputs back to normal: no feature drifts in the new minute and the alert closes', async () => {
    // The normal windows must not share a minute bucket with the shifted ones.
    const [last] = await cp.plane.db.select({ start: sql<string>`max(${statsWindows.windowStart})` }).from(statsWindows);
    const boundary = Math.floor(Date.parse(last.start) / 60_000) * 60_000 + 60_000;
    if (Date.now() < boundary) await new Promise((r) => setTimeout(r, boundary - Date.now() + 50));
    for (const a of agents) await send(a, false);
    await allDelivered();
    const end = new Date(boundary + 59_000).toISOString();
    const report = await cli('drift', `${MODEL}@1`, '--cohort', 'lab', '--window', '59s', '--end', end);
    assert.equal(report.rows, agents.length * 3 * ROWS_PER_BATCH);
    assert.deepEqual(report.features.filter((f: { drifted: boolean }) => f.drifted), []);
    const closed = await cp.api('POST', '/api/v1/drift/evaluate', { json: { model: `${MODEL}@1`, cohort: 'lab', window: '59s', end } });
    assert.equal(closed.body.evaluations[0].transition, 'closed', JSON.stringify(closed.body));
    const h = await delivered('alert.closed');
    assert.equal(h.headers['x-flotilla-signature'], 'sha256=' + createHmac('sha256', SECRET).update(h.body).digest('hex'));
    assert.equal((await cp.api('GET', '/api/v1/alerts?status=open')).body.alerts.length, 0);
  });
});
