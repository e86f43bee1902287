// The drift page's categorical bar chart, drift alerts with their webhook deliveries, and a retraining
// job's live log, in Chromium against a real control plane: a device on real MQTT sends sketches in
// which a categorical feature moved; an alert opens (the drift service's own transition, in the plane's
// database) and its webhook reaches a receiver in this test after one refused attempt; a command
// trainer prints a line, waits for the test, prints another — the open log shows both without a reload.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import type { Page } from 'playwright-core';
import { waitFor } from '../agent/testing/harness.ts';
import { createKeyList, signKeyList } from '../firmware-bundles/key-list.ts';
import { generateKeyPair } from '../firmware-bundles/keys.ts';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import type { SketchLayout } from '../protocol/sketch/feature-set-sketch.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { applyDriftVerdict } from '../server/alerts/alert-service.ts';
import { makeTabularRows, tabularToCsv } from '../server/training/synthetic-tabular.ts';
import { ARTIFACTS, assertLabelled, ensureConsoleBuilt, launchBrowser, REPO, requireChromium, signIn } from './helpers/browser.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { generateRows, rowsToCsv, sketchOf, statsMessage } from './helpers/device-stats.ts';
import { gemmModel } from './helpers/models.ts';

const FACTS = { arch: 'arm64', cpus: 4, memoryBytes: 4 * 2 ** 30, os: 'linux', agentVersion: '0.1.0' };

describe('console drift categories, alerts with webhook deliveries and live job logs in Chromium', () => {
  let cp: TestPlane;
  let dir: string;
  let receiver: Server;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let page: Page;
  let layout: SketchLayout;
  let bundleId: string;
  let device: { id: string; client: MqttClient };
  /** Webhook requests the receiver saw: the first attempt of each delivery is refused with a 503. */
  const hooks: Array<{ delivery: string; event: string; status: number }> = [];

  const ok = async (method: string, p: string, json?: unknown) => {
    const r = await cp.api(method, p, json === undefined ? {} : { json });
    assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };

  before(async () => {
    requireChromium();
    ensureConsoleBuilt();
    await mkdir(ARTIFACTS, { recursive: true });
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-web-alerts-'));
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const delivery = String(req.headers['x-flotilla-delivery']);
        const status = hooks.some((h) => h.delivery === delivery) ? 200 : 503;
        hooks.push({ delivery, event: JSON.parse(body).event, status });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    cp = await startControlPlane({
      ingestFlushMs: 40,
      driftCron: 'off',
      schedulerTickMs: 100,
      alertWebhookUrl: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`,
      alertWebhookSecret: 'a-test-secret-of-some-length',
      alertWebhookPollMs: 50,
      alertWebhookBaseDelayMs: 40,
      alertWebhookMaxAttempts: 10,
    });
    assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel() as unknown as BodyInit })).status, 201);
    const root = generateKeyPair();
    const release = await ok('POST', '/api/v1/keys/release');
    await ok('PUT', '/api/v1/keys/keylist', signKeyList(createKeyList({ version: 1, root, keys: [release], threshold: 1, expiresAt: new Date(Date.now() + 86400e3) }), root.privateKeyPem));
    // f7 takes the values 0..4: declared categorical, so its drift is a chi-square over categories.
    const ref = await cp.api('POST', '/api/v1/models/tab/versions/1/reference?categorical=f7', { body: rowsToCsv(generateRows(2000, 1)), headers: { 'content-type': 'text/csv' } });
    assert.equal(ref.status, 201, JSON.stringify(ref.body));
    layout = (await ok('GET', '/api/v1/models/tab/versions/1/reference')).layout;
    assert.equal((layout.features as Record<string, { kind: string }>).f7.kind, 'categorical');
    const { definition, labels } = await loadBundleDefinition(path.join(REPO, 'firmware-bundles', 'tabular-demo', 'bundle.json'));
    bundleId = (await ok('POST', '/api/v1/bundles', { model: 'tab@1', definition, labels })).id;
    await ok('POST', '/api/v1/cohorts', { name: 'lab', selector: 'site=lab' });
    const token = (await ok('POST', '/api/v1/enroll-tokens', { labels: { site: 'lab' }, maxUses: 1 })).token;
    const r = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS, name: 'lab-1' } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    device = { id: r.body.deviceId, client: await mqtt.connectAsync(cp.mqttUrl, { clientId: r.body.deviceId, username: r.body.deviceId, password: r.body.mqtt.password, reconnectPeriod: 0 }) };
    await ok('POST', '/api/v1/deployments', { bundle: bundleId, cohort: 'lab' });
    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.setDefaultTimeout(30_000);
    await signIn(page, cp.url, cp.adminToken);
  });

  after(async () => {
    await browser?.close();
    await device?.client.endAsync().catch(() => undefined);
    await cp?.stop();
    await new Promise((r) => receiver?.close(r));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('drift: a categorical feature as side-by-side bars — the API\'s categories and counts, the live mass moved to "4"', async () => {
    // Live rows: f7 is "4" in four rows of five (the reference spreads it evenly over 0..4).
    const rows = generateRows(500, 9).map((row, i) => ({ ...row, values: { ...row.values, f7: String(i % 5 === 0 ? row.values.f7 : 4) } }));
    const now = Date.now();
    await device.client.publishAsync(deviceTopic(device.id, 'stats'), JSON.stringify(statsMessage({ deviceId: device.id, bundleId, model: { name: 'tab', version: 1 }, seq: 1, start: new Date(now - 70_000), end: new Date(now - 10_000), sketch: sketchOf(layout, rows as never) })), { qos: 1 });
    const api = await waitFor(async () => {
      const b = (await cp.api('GET', '/api/v1/drift?model=tab%401&cohort=lab&window=1h&histograms=true')).body;
      return b.rows === 500 ? b : null;
    }, 'the window is ingested', 20_000);
    const hist = api.histograms.find((h: { feature: string }) => h.feature === 'f7') as { kind: string; categories: string[]; reference: number[]; live: number[] };
    assert.equal(hist.kind, 'categorical');
    assert.equal(api.features.find((f: { feature: string }) => f.feature === 'f7').kind, 'categorical');

    await page.goto(cp.url + '/drift');
    await page.getByRole('heading', { level: 1, name: 'Drift' }).waitFor();
    await page.getByRole('combobox', { name: /^Cohort\b/ }).selectOption('lab');
    await page.getByRole('button', { name: '1 h' }).click();
    await page.getByRole('button', { name: 'f7', exact: true }).click();
    const figure = page.getByRole('figure', { name: /^f7: reference vs live/ });
    await figure.waitFor();
    const bars = await figure.locator('g.bin').evaluateAll((gs) => gs.map((g) => ({ label: g.getAttribute('data-label'), reference: Number(g.getAttribute('data-reference')), live: Number(g.getAttribute('data-live')) })));
    assert.deepEqual(bars.map((b) => b.label), hist.categories, 'one bar pair per category of the API, "other" last');
    assert.deepEqual(bars.map((b) => b.reference), hist.reference);
    assert.deepEqual(bars.map((b) => b.live), hist.live);
    const four = bars.find((b) => b.label === '4')!;
    assert.ok(four.live / 500 > 0.75 && four.reference / 2000 < 0.3, `"4" holds most of the live rows (${four.live}/500) and a fifth of the reference (${four.reference}/2000)`);
    const row = page.getByRole('row').filter({ has: page.getByRole('cell', { name: 'f7', exact: true }) });
    const f = api.features.find((x: { feature: string }) => x.feature === 'f7');
    await row.getByRole('cell', { name: f.method, exact: true }).waitFor();
    await assertLabelled(page, 'drift-categorical');
    await page.screenshot({ path: path.join(ARTIFACTS, 'drift-categorical-1280.png'), fullPage: true });
  });

  test('alerts: an opened alert with its webhook delivered after a refused attempt, then closed — the open page follows without a reload', async () => {
    const modelVersionId = (await cp.plane.db.query.modelVersions.findMany({ limit: 1 }))[0].id;
    const span = { start: new Date(Date.now() - 3600e3).toISOString(), end: new Date().toISOString() };
    const verdict = (drifted: Array<{ feature: string; kind: 'input'; method: string; score: number; threshold: number }>) =>
      cp.plane.db.transaction((tx) => applyDriftVerdict(tx, { cohort: 'lab', modelVersionId, model: 'tab@1', drifted, evaluated: true, window: span, notify: true }));
    await page.goto(cp.url + '/drift');
    await page.getByRole('heading', { level: 2, name: 'Alerts' }).waitFor();
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 3));
    const opened = await verdict([{ feature: 'f7', kind: 'input', method: 'chi2', score: 0.6, threshold: 0.05 }]);
    assert.equal(opened.transition, 'opened');
    const id = opened.alert!.id;
    const deliveries = async () => (await ok('GET', '/api/v1/alerts/deliveries?limit=50')).deliveries.filter((d: { alertId: string }) => d.alertId === id) as Array<{ event: string; status: string; attempts: number; lastError: string | null }>;
    await waitFor(async () => (await deliveries()).some((d) => d.event === 'alert.opened' && d.status === 'delivered'), 'the opened alert is delivered', 20_000);
    const text = (ds: Awaited<ReturnType<typeof deliveries>>) => ds.map((d) => `${d.event}: ${d.status}${d.attempts > 1 ? ` after ${d.attempts} attempts` : ''}${d.lastError ? ` (${d.lastError})` : ''}`).join('; ');
    const row = page.locator(`tr[data-alert="${id}"]`);
    const opening = await deliveries();
    assert.equal(opening[0].attempts, 2, 'refused once, delivered on the retry');
    assert.deepEqual(hooks.filter((h) => h.event === 'alert.opened').map((h) => h.status), [503, 200]);
    await row.getByRole('cell', { name: text(opening), exact: true }).waitFor();
    await row.getByText('open', { exact: true }).waitFor();
    await row.getByRole('cell', { name: /^f7 0\.600 \/ 0\.05/ }).waitFor();

    const closed = await verdict([]);
    assert.equal(closed.transition, 'closed');
    await waitFor(async () => (await deliveries()).filter((d) => d.status === 'delivered').length === 2, 'the closing is delivered too', 20_000);
    const both = await deliveries();
    assert.deepEqual(both.map((d) => d.event).sort(), ['alert.closed', 'alert.opened']);
    await row.getByText('closed', { exact: true }).waitFor();
    await row.getByRole('cell', { name: text(both), exact: true }).waitFor();
    assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 3, 'the page was not reloaded');
    await assertLabelled(page, 'drift-alerts');
    await page.getByRole('table', { name: 'Drift alerts' }).screenshot({ path: path.join(ARTIFACTS, 'drift-alerts-1280.png') });
  });

  test('retraining: a running job\'s log grows on the open page as the trainer prints, and ends as the API has it', async () => {
    const csv = tabularToCsv(makeTabularRows({ n: 200, seed: 4 }));
    assert.equal((await cp.api('POST', '/api/v1/datasets/train/versions', { body: csv, headers: { 'content-type': 'text/csv' } })).status, 201);
    const go = path.join(dir, 'go');
    const trainer = path.join(dir, 'trainer.mjs');
    await writeFile(
      trainer,
      `import { copyFileSync, existsSync } from 'node:fs';
       console.log('epoch 1: loss 0.91');
       const wait = () => existsSync(${JSON.stringify(go)}) ? finish() : setTimeout(wait, 50);
       const finish = () => { console.log('epoch 2: loss 0.42'); copyFileSync(process.env.FLOTILLA_PARENT_MODEL, process.env.FLOTILLA_OUTPUT); };
       wait();`,
    );
    await ok('PUT', '/api/v1/models/tab/retrain-policy', { data: { dataset: 'train' }, trainer: { kind: 'command', argv: [process.execPath, trainer] }, after: { evaluate: false } });
    const job = await ok('POST', '/api/v1/models/tab/retrain');
    await waitFor(async () => ((await ok('GET', `/api/v1/jobs/${job.id}/logs`)).lines as Array<{ line: string }>).some((l) => l.line.includes('epoch 1')), 'the trainer printed its first line', 30_000);
    await page.goto(cp.url + '/retraining');
    await page.getByRole('heading', { level: 1, name: 'Retraining' }).waitFor();
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 4));
    await page.getByRole('button', { name: job.id, exact: true }).click();
    const log = page.locator(`pre[aria-label="Log of ${job.id}"]`);
    await log.getByText('epoch 1: loss 0.91').waitFor();
    assert.equal(await log.getByText('epoch 2').count(), 0, 'the trainer has not gone on yet');
    await writeFile(go, '');
    await log.getByText('epoch 2: loss 0.42').waitFor();
    const done = await waitFor(async () => {
      const j = await ok('GET', `/api/v1/jobs/${job.id}`);
      return ['succeeded', 'failed'].includes(j.status) ? j : null;
    }, 'the job ends', 30_000);
    assert.equal(done.status, 'succeeded', done.error);
    const lines = (await ok('GET', `/api/v1/jobs/${job.id}/logs`)).lines as Array<{ at: string; stream: string; line: string }>;
    const want = lines.map((l) => `${l.at.slice(11, 19)} ${l.stream.padEnd(6)} ${l.line}`).join('\n');
    await waitFor(async () => (await log.textContent()) === want, 'the log shows every line the API has', 20_000).catch(async () => assert.equal(await log.textContent(), want));
    assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 4, 'the page was not reloaded');
    await page.getByRole('row').filter({ has: page.getByRole('button', { name: job.id, exact: true }) }).getByText('succeeded', { exact: true }).waitFor();
    await assertLabelled(page, 'retraining-log');
    await page.screenshot({ path: path.join(ARTIFACTS, 'retraining-live-log-1280.png'), fullPage: true });
  });
});
