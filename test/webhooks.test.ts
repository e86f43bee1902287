// Webhook subscriptions end to end, with a real HTTP receiver: each subscription gets exactly the events its
// filter names (model registered, alias moved, drift alert opened), signed with its own secret; a 500 is
// retried under the same delivery id; `webhooks test` delivers a ping; every subscription has its delivery
// log; bad input is a 4xx naming what to fix; only admins manage subscriptions.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../agent/testing/harness.ts';
import { applyDriftVerdict } from '../server/alerts/alert-service.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

interface Hook {
  path: string;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

describe('webhook subscriptions', () => {
  let cp: TestPlane;
  let receiver: Server;
  let base: string;
  let env: Record<string, string>;
  const hooks: Hook[] = [];
  /** `/flaky` answers 500 to the first attempt of every delivery, then 200. */
  const answer = (path: string, seen: number) => (path === '/flaky' && seen === 0 ? 500 : 200);
  const subs: Record<string, { id: string; secret: string }> = {};

  const cli = async (...args: string[]) => {
    const r = await runCli(['--json', ...args], env);
    assert.equal(r.code, 0, `flotilla ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const at = (path: string) => hooks.filter((h) => h.path === path && h.status === 200).map((h) => JSON.parse(h.body) as { id: string; event: string; subject: string; data: Record<string, unknown> });

  before(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const seen = hooks.filter((h) => h.headers['x-flotilla-delivery'] === req.headers['x-flotilla-delivery']).length;
        const status = answer(req.url!, seen);
        hooks.push({ path: req.url!, status, headers: req.headers, body });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    cp = await startControlPlane({ driftCron: 'off', alertWebhookPollMs: 50, alertWebhookBaseDelayMs: 40 });
    env = { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken };
  });
  after(async () => {
    await cp?.stop();
    await new Promise((r) => receiver.close(r));
  });

  test('each subscription receives the events its filter names, signed with its secret; a 500 is retried', async () => {
    subs.models = await cli('webhooks', 'add', `${base}/models`, '--events', 'model.alias_moved,alert.*', '--secret', 'models-secret-0123456789');
    subs.flaky = await cli('webhooks', 'add', `${base}/flaky`, '--events', 'model.version_registered', '--description', 'CI trigger');
    assert.match(subs.flaky.secret, /^whsec_/, 'a secret is generated when none is given');
    assert.deepEqual((await cli('webhooks', 'ls')).map((w: { id: string }) => w.id).sort(), [subs.models.id, subs.flaky.id].sort());
    const shown = await cli('webhooks', 'show', subs.flaky.id);
    assert.equal(shown.url, `${base}/flaky`);
    assert.deepEqual(shown.events, ['model.version_registered']);
    assert.equal(shown.secret, undefined, 'the secret is shown only at creation');

    assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel({ seed: 1 }) as BodyInit })).status, 201);
    assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel({ seed: 2 }) as BodyInit })).status, 201);
    await cli('models', 'alias', 'tab', 'champion', '2');
    const [mv] = await cp.plane.db.query.modelVersions.findMany({ limit: 1 });
    await cp.plane.db.transaction((tx) =>
      applyDriftVerdict(tx, { cohort: 'lab', modelVersionId: mv.id, model: 'tab@1', drifted: [{ feature: 'f0', kind: 'input', method: 'psi', score: 0.9, threshold: 0.2 }], evaluated: true, window: { start: '2026-01-01T00:00:00.000Z', end: '2026-01-01T01:00:00.000Z' }, notify: false }),
    );

    await waitFor(() => at('/flaky').length === 2 && at('/models').length === 2, 'both subscriptions served', 60_000);
    // (Retries are jittered, so the two registrations may arrive in either order.)
    assert.deepEqual(at('/flaky').map((e) => [e.event, e.subject]).sort(), [['model.version_registered', 'tab@1'], ['model.version_registered', 'tab@2']]);
    assert.deepEqual(at('/models').map((e) => e.event), ['model.alias_moved', 'alert.opened']);
    assert.deepEqual(at('/models')[0].data, { model: 'tab', version: 2, alias: 'champion', from: null, by: at('/models')[0].data.by });

    // Signed with each subscription's own secret, byte for byte; the delivery id is in the header and the body.
    for (const h of hooks) {
      const secret = h.path === '/models' ? subs.models.secret : subs.flaky.secret;
      assert.equal(h.headers['x-flotilla-signature'], 'sha256=' + createHmac('sha256', secret).update(h.body).digest('hex'));
      assert.equal(JSON.parse(h.body).id, h.headers['x-flotilla-delivery']);
      assert.equal(h.headers['x-flotilla-event'], JSON.parse(h.body).event);
    }
    // Every /flaky delivery was refused once with 500 and delivered on the retry, under the same id.
    const flaky = hooks.filter((h) => h.path === '/flaky');
    assert.deepEqual(flaky.map((h) => h.status).sort(), [200, 200, 500, 500]);
    for (const id of new Set(flaky.map((h) => h.headers['x-flotilla-delivery']))) assert.deepEqual(flaky.filter((h) => h.headers['x-flotilla-delivery'] === id).map((h) => h.status), [500, 200]);

    // The delivery log says so (the sender marks a row delivered after the receiver answered: poll).
    const delivered = async (id: string, n: number) => (await cp.api('GET', `/api/v1/webhooks/${id}/deliveries?status=delivered`)).body.deliveries.length === n;
    await waitFor(async () => (await delivered(subs.flaky.id, 2)) && (await delivered(subs.models.id, 2)), 'deliveries marked delivered', 60_000);
    const log = await cli('webhooks', 'deliveries', subs.flaky.id);
    assert.deepEqual(log.map((d: { status: string; attempts: number; lastError: string | null }) => [d.status, d.attempts, d.lastError]), [['delivered', 2, null], ['delivered', 2, null]]);
    const human = await runCli(['webhooks', 'deliveries', subs.models.id], env);
    assert.match(human.stdout, /alert\.opened\s+delivered\s+1/);
  });

  test('`webhooks test` delivers a signed ping; a removed subscription gets nothing more', async () => {
    const ping = await cli('webhooks', 'test', subs.models.id);
    await waitFor(() => at('/models').some((e) => e.event === 'ping'), 'ping delivered', 60_000);
    const hook = hooks.find((h) => h.headers['x-flotilla-delivery'] === ping.deliveryId)!;
    assert.equal(hook.headers['x-flotilla-signature'], 'sha256=' + createHmac('sha256', subs.models.secret).update(hook.body).digest('hex'));
    assert.equal(JSON.parse(hook.body).subscriptionId, subs.models.id);

    await cli('webhooks', 'rm', subs.flaky.id);
    assert.equal((await cp.api('GET', `/api/v1/webhooks/${subs.flaky.id}/deliveries`)).status, 404);
    assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel({ seed: 3 }) as BodyInit })).status, 201);
    await cli('models', 'alias', 'tab', 'champion', '3');
    await waitFor(() => at('/models').filter((e) => e.event === 'model.alias_moved').length === 2, 'second alias move delivered', 60_000);
    // The registration was fanned out no later than the alias move and is sent first (due earlier): nothing reached /flaky.
    assert.equal(hooks.filter((h) => h.path === '/flaky').length, 4);
    assert.equal((await cp.plane.db.query.webhookDeliveries.findMany()).filter((d) => d.subscriptionId === subs.flaky.id).length, 0);
  });

  test('bad input: 4xx with {error:{code,message,details}}; only admins manage webhooks', async () => {
    const post = (json: unknown, token?: string) => cp.api('POST', '/api/v1/webhooks', { json, ...(token ? { token } : {}) });
    for (const url of ['not a url', 'ftp://example.com/hook', 'http://user:pw@example.com/hook']) {
      const r = await post({ url, events: ['rollout.*'] });
      assert.equal(r.status, 400, url);
      assert.equal(r.body.error.code, 'invalid_request');
    }
    const unknown = await post({ url: `${base}/x`, events: ['rollout.*', 'rollout.exploded'] });
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.error.message, /rollout\.exploded/);
    assert.ok(unknown.body.error.details.valid.includes('rollout.paused'));
    assert.match((await post({ url: `${base}/x`, events: [] })).body.error.message, /empty/);
    assert.equal((await post({ url: `${base}/x`, events: ['rollout.*'], secret: 'short' })).status, 400);
    assert.equal((await cp.api('DELETE', '/api/v1/webhooks/whk_nope')).status, 404);
    assert.equal((await cp.api('POST', '/api/v1/webhooks/whk_nope/test')).status, 404);

    const engineer = (await cli('tokens', 'create', '--role', 'ml-engineer')).token;
    assert.equal((await post({ url: `${base}/x`, events: ['rollout.*'] }, engineer)).status, 403);
    assert.equal((await cp.api('GET', '/api/v1/webhooks', { token: engineer })).status, 403);

    const badCli = await runCli(['webhooks', 'add', `${base}/x`, '--events', 'rollout.nope'], env);
    assert.equal(badCli.code, 1);
    assert.match(badCli.stderr, /unknown event name.*rollout\.nope/);
  });
});
