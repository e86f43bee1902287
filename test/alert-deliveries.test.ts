// Durable alert webhook deliveries: the delivery row is written in the alert's transaction (a rolled-back
// alert sends nothing), survives a control-plane restart while the receiver is down and then arrives
// exactly once, signed, with its delivery id; 500s are retried; past the attempt limit the row is failed
// and listed by /alerts/deliveries and /metrics.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { eq } from 'drizzle-orm';
import { applyDriftVerdict, type AlertFeature } from '../server/alerts/alert-service.ts';
import { ControlPlane } from '../server/control-plane.ts';
import { alerts, webhookDeliveries } from '../server/db/schema.ts';
import { createLogger } from '../server/logger.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

const SECRET = 'delivery-test-secret';
const DRIFTED: AlertFeature[] = [{ feature: 'f0', kind: 'input', method: 'psi', score: 0.9, threshold: 0.2 }];
const WINDOW = { start: '2026-01-01T00:00:00.000Z', end: '2026-01-01T01:00:00.000Z' };

async function until<T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v && !(Array.isArray(v) && v.length === 0)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('alert webhook deliveries (durable outbox)', () => {
  let cp: TestPlane;
  let port: number;
  let receiver: Server | undefined;
  let modelVersionId: number;
  const hooks: Array<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> = [];
  /** Status the receiver answers for a request (by event body), given how many it saw for that delivery. */
  let answer: (body: any, seen: number) => number = () => 200;

  const startReceiver = () =>
    new Promise<void>((resolve) => {
      receiver = createServer((req, res) => {
        let body = '';
        req.on('data', (d) => (body += d));
        req.on('end', () => {
          const seen = hooks.filter((h) => h.headers['x-flotilla-delivery'] === req.headers['x-flotilla-delivery']).length;
          const status = answer(JSON.parse(body), seen);
          hooks.push({ status, headers: req.headers, body });
          res.writeHead(status).end();
        });
      });
      receiver.listen(port, '127.0.0.1', () => resolve());
    });
  const api = async (pathname: string) => {
    const res = await fetch(cp.plane.httpUrl + pathname, { headers: { authorization: `Bearer ${cp.adminToken}` } });
    return { status: res.status, body: res.status === 200 && pathname.startsWith('/api') ? await res.json() : await res.text() };
  };
  const verdict = (cohort: string, drifted: AlertFeature[]) =>
    cp.plane.db.transaction((tx) => applyDriftVerdict(tx, { cohort, modelVersionId, model: 'tab@1', drifted, evaluated: true, window: WINDOW, notify: true }));
  const rowsOf = (alertId: string, event = 'alert.opened') =>
    cp.plane.db.select().from(webhookDeliveries).then((rows) => rows.filter((r) => r.event === event && JSON.parse(r.payload).alert.id === alertId));

  before(async () => {
    // A port nobody listens on yet: the receiver is down until the test starts it there.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    cp = await startControlPlane({
      driftCron: 'off',
      alertWebhookUrl: `http://127.0.0.1:${port}/hook`,
      alertWebhookSecret: SECRET,
      alertWebhookPollMs: 50,
      alertWebhookBaseDelayMs: 40,
      alertWebhookMaxAttempts: 50,
    });
    assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel() as BodyInit })).status, 201);
    const [mv] = await cp.plane.db.query.modelVersions.findMany({ limit: 1 });
    modelVersionId = mv.id;
  });

  after(async () => {
    await cp?.stop();
    if (receiver) await new Promise((r) => receiver!.close(r));
  });

  test('a rolled-back alert enqueues nothing', async () => {
    await assert.rejects(
      cp.plane.db.transaction(async (tx) => {
        const r = await applyDriftVerdict(tx, { cohort: 'rollback', modelVersionId, model: 'tab@1', drifted: DRIFTED, evaluated: true, window: WINDOW, notify: true });
        assert.equal(r.transition, 'opened');
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal((await cp.plane.db.select().from(alerts).where(eq(alerts.cohort, 'rollback'))).length, 0);
    assert.equal((await cp.plane.db.select().from(webhookDeliveries)).length, 0);
  });

  test('receiver down when the alert opens, control plane restarted: delivered exactly once, signed, with its delivery id', async () => {
    const opened = await verdict('lab', DRIFTED);
    assert.equal(opened.transition, 'opened');
    cp.plane.alertWebhook!.wake();
    const [row] = await until('a failed attempt', async () => (await rowsOf(opened.alert!.id)).filter((r) => r.attempts >= 1));
    assert.equal(row.status, 'pending');
    assert.match(row.lastError ?? '', /fetch failed|ECONNREFUSED/);

    const config = cp.plane.config;
    await cp.plane.stop();
    await startReceiver();
    const restarted = new ControlPlane(config, createLogger(process.env.FLOTILLA_TEST_LOG ?? 'silent'));
    await restarted.start();
    cp.plane = restarted;

    const hook = await until('the webhook after the restart', () => hooks.find((h) => h.headers['x-flotilla-event'] === 'alert.opened'));
    await new Promise((r) => setTimeout(r, 300)); // no second copy follows
    assert.equal(hooks.filter((h) => JSON.parse(h.body).alert.id === opened.alert!.id).length, 1);
    assert.equal(hook.headers['x-flotilla-signature'], 'sha256=' + createHmac('sha256', SECRET).update(hook.body).digest('hex'));
    assert.equal(hook.headers['x-flotilla-delivery'], row.id);
    assert.equal(JSON.parse(hook.body).event, 'alert.opened');
    const [done] = await rowsOf(opened.alert!.id);
    assert.equal(done.status, 'delivered');
    assert.ok(done.deliveredAt);
    const listed = await api('/api/v1/alerts/deliveries?status=delivered');
    assert.equal(listed.status, 200);
    assert.ok(listed.body.deliveries.some((d: any) => d.id === row.id && d.alertId === opened.alert!.id));
  });

  test('a receiver answering 500 is retried with the same delivery id, then succeeds', async () => {
    answer = (_body, seen) => (seen < 2 ? 500 : 200);
    const closed = await verdict('lab', []);
    assert.equal(closed.transition, 'closed');
    cp.plane.alertWebhook!.wake();
    const [row] = await until('delivered after retries', async () => (await rowsOf(closed.alert!.id, 'alert.closed')).filter((r) => r.status === 'delivered'));
    const calls = hooks.filter((h) => h.headers['x-flotilla-delivery'] === row.id);
    assert.deepEqual(calls.map((c) => c.status), [500, 500, 200]);
    assert.equal(row.attempts, 3);
    assert.equal(JSON.parse(calls[2].body).event, 'alert.closed');
  });

  test('after the maximum attempts the row is failed, listed by the API and counted in /metrics', async () => {
    // A fresh plane on the same data with a small attempt limit.
    const config = { ...cp.plane.config, alertWebhookMaxAttempts: 3 };
    await cp.plane.stop();
    cp.plane = new ControlPlane(config, createLogger(process.env.FLOTILLA_TEST_LOG ?? 'silent'));
    await cp.plane.start();
    answer = () => 500;
    const opened = await verdict('edge', DRIFTED);
    cp.plane.alertWebhook!.wake();
    const [row] = await until('failed', async () => (await rowsOf(opened.alert!.id)).filter((r) => r.status === 'failed'));
    assert.equal(row.attempts, 3);
    assert.equal(row.lastError, 'HTTP 500');
    assert.equal(hooks.filter((h) => h.headers['x-flotilla-delivery'] === row.id).length, 3);
    const failed = await api('/api/v1/alerts/deliveries?status=failed');
    assert.equal(failed.status, 200);
    assert.deepEqual(failed.body.deliveries.map((d: any) => [d.id, d.status, d.attempts, d.lastError]), [[row.id, 'failed', 3, 'HTTP 500']]);
    const env = { FLOTILLA_URL: cp.plane.httpUrl, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: '/nonexistent-flotilla-config' };
    const cli = await runCli(['alerts', 'deliveries', '--status', 'failed', '--json'], env);
    assert.equal(cli.code, 0, cli.stderr);
    assert.deepEqual(JSON.parse(cli.stdout).deliveries.map((d: any) => [d.id, d.event, d.status, d.attempts, d.lastError]), [[row.id, 'alert.opened', 'failed', 3, 'HTTP 500']]);
    const text = await runCli(['alerts', 'deliveries', '--status', 'failed'], env);
    assert.match(text.stdout, /^ID\s+EVENT\s+STATUS\s+ATTEMPTS\s+NEXT ATTEMPT\s+LAST ERROR$/m);
    assert.match(text.stdout, new RegExp(`^${row.id}\\s+alert\\.opened\\s+failed\\s+3\\s+-\\s+HTTP 500$`, 'm'));
    const metrics = (await api('/metrics')).body as string;
    assert.match(metrics, /flotilla_alert_webhook_deliveries\{status="failed"\} 1\b/);
    assert.match(metrics, /flotilla_alert_webhook_deliveries\{status="pending"\} 0\b/);
  });
});
