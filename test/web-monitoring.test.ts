// The console's monitoring views in Chromium against a real control plane fed over real MQTT by two
// enrolled devices (MQTT clients sending stats and telemetry as agents do): the drift page's reference-
// vs-live histogram shows the API's bins and the shift put into one feature; the device page charts
// the per-minute series the API computes from the reports; the models page draws the lineage graph;
// the rollouts page shows each gate against its threshold; a retraining policy is created, disabled
// and removed from the UI; and, with the pages' polling turned off,
// a device going offline and a deployment created through the API appear on already-open pages
// through the event stream, without a reload.
import assert from 'node:assert/strict';
import { copyFile, mkdir } from 'node:fs/promises';
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
import { ARTIFACTS, assertLabelled, ensureConsoleBuilt, launchBrowser, REPO, requireChromium, signIn } from './helpers/browser.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { generateRows, rowsToCsv, sketchOf, statsMessage, telemetryMessage } from './helpers/device-stats.ts';
import { gemmModel } from './helpers/models.ts';
import { makeTabularRows, tabularToCsv } from '../server/training/synthetic-tabular.ts';

const FACTS = { arch: 'arm64', cpus: 4, memoryBytes: 4 * 2 ** 30, os: 'linux', agentVersion: '0.1.0' };
const MINUTE = 60_000;

/** Share-weighted mean bin index: where a histogram's mass sits. */
const centre = (counts: number[]) => {
  const total = counts.reduce((a, b) => a + b, 0);
  return counts.reduce((s, c, i) => s + i * c, 0) / total;
};

describe('console monitoring views and live updates in Chromium', () => {
  let cp: TestPlane;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let page: Page;
  let layout: SketchLayout;
  let bundleId: string;
  let bundle2Id: string;
  const devices: Array<{ id: string; name: string; client: MqttClient }> = [];
  const model = { name: 'tab', version: 1 };
  let seq = 0;
  const publish = (d: { id: string; client: MqttClient }, channel: 'stats' | 'telemetry', payload: unknown) => d.client.publishAsync(deviceTopic(d.id, channel), JSON.stringify(payload), { qos: 1 });

  before(async () => {
    requireChromium();
    ensureConsoleBuilt();
    await mkdir(ARTIFACTS, { recursive: true });
    cp = await startControlPlane({ ingestFlushMs: 40, driftCron: 'off', schedulerTickMs: 200 });
    assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel() as unknown as BodyInit })).status, 201);
    const root = generateKeyPair();
    const release = (await cp.api('POST', '/api/v1/keys/release')).body;
    const list = createKeyList({ version: 1, root, keys: [release], threshold: 1, expiresAt: new Date(Date.now() + 86400e3) });
    assert.equal((await cp.api('PUT', '/api/v1/keys/keylist', { json: signKeyList(list, root.privateKeyPem) })).status, 200);
    const ref = await cp.api('POST', '/api/v1/models/tab/versions/1/reference', { body: rowsToCsv(generateRows(3000, 1)), headers: { 'content-type': 'text/csv' } });
    assert.equal(ref.status, 201, JSON.stringify(ref.body));
    layout = (await cp.api('GET', '/api/v1/models/tab/versions/1/reference')).body.layout;
    const { definition, labels } = await loadBundleDefinition(path.join(REPO, 'firmware-bundles', 'tabular-demo', 'bundle.json'));
    const built = await cp.api('POST', '/api/v1/bundles', { json: { model: 'tab@1', definition, labels } });
    assert.equal(built.status, 201, JSON.stringify(built.body));
    bundleId = built.body.id;
    assert.equal((await cp.api('POST', '/api/v1/cohorts', { json: { name: 'lab', selector: 'site=lab' } })).status, 201);
    assert.equal((await cp.api('POST', '/api/v1/cohorts', { json: { name: 'yard', selector: 'site=yard' } })).status, 201);
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels: { site: 'lab' }, maxUses: 2 } })).body.token;
    for (let i = 0; i < 2; i++) {
      const name = `lab-${i + 1}`;
      const r = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS, name } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const client = await mqtt.connectAsync(cp.mqttUrl, { clientId: r.body.deviceId, username: r.body.deviceId, password: r.body.mqtt.password, reconnectPeriod: 0 });
      devices.push({ id: r.body.deviceId, name, client });
    }
    assert.equal((await cp.api('POST', '/api/v1/deployments', { json: { bundle: bundleId, cohort: 'lab' } })).status, 201);
    await waitFor(async () => (await cp.api('GET', '/api/v1/fleet')).body.devices.every((d: { online: boolean }) => d.online), 'both devices online', 20_000);
    browser = await launchBrowser();
    // Pages poll while mounted; off here, so whatever changes on an open page came through the event stream.
    await browser.context.addInitScript(() => sessionStorage.setItem('flotilla.poll', 'off'));
    page = await browser.context.newPage();
    page.setDefaultTimeout(30_000);
    await signIn(page, cp.url, cp.adminToken);
  });

  after(async () => {
    await browser?.close();
    for (const d of devices) await d.client.endAsync().catch(() => undefined);
    await cp?.stop();
  });

  test('drift: the histogram overlay shows the API\'s reference and live bins, and the shift put into f3', async () => {
    const now = Date.now();
    for (const d of devices) {
      const rows = generateRows(600, 20 + seq, { feature: 'f3', sigmas: 3 });
      await publish(d, 'stats', statsMessage({ deviceId: d.id, bundleId, model, seq: ++seq, start: new Date(now - 70_000), end: new Date(now - 10_000), sketch: sketchOf(layout, rows) }));
    }
    const api = await waitFor(async () => {
      const r = (await cp.api('GET', '/api/v1/drift?model=tab%401&cohort=lab&window=600s&histograms=true')).body;
      return r.rows === 1200 ? r : null;
    }, 'both windows ingested', 20_000);
    const hist = (f: string) => api.histograms.find((h: { feature: string }) => h.feature === f) as { kind: string; edges: number[]; reference: number[]; live: number[] };
    assert.equal(hist('f3').kind, 'numeric');
    assert.equal(hist('f3').live.length, hist('f3').edges.length + 1);
    assert.equal(hist('f3').live.reduce((a, b) => a + b, 0), 1200);
    assert.ok(centre(hist('f3').live) > centre(hist('f3').reference) + 2, 'the API\'s live f3 bins sit well above the reference');
    assert.equal((await cp.api('GET', '/api/v1/drift?model=tab%401&cohort=lab&window=600s')).body.histograms, undefined, 'only when asked for');

    await page.getByRole('link', { name: 'Drift' }).click();
    await page.getByRole('heading', { level: 1, name: 'Drift' }).waitFor();
    await page.getByRole('combobox', { name: /^Cohort\b/ }).selectOption('lab');
    await page.getByRole('button', { name: '1 h' }).click();
    for (const f of ['f3', 'f0']) {
      await page.getByRole('button', { name: f, exact: true }).click();
      const figure = page.getByRole('figure', { name: `${f}: reference vs live share of rows per bin` });
      await figure.waitFor();
      const bins = await figure.locator('g.bin').evaluateAll((gs) => gs.map((g) => ({ reference: Number(g.getAttribute('data-reference')), live: Number(g.getAttribute('data-live')) })));
      assert.deepEqual(bins.map((b) => b.reference), hist(f).reference, `${f}: the reference bars are the API's counts`);
      assert.deepEqual(bins.map((b) => b.live), hist(f).live, `${f}: the live bars are the API's counts`);
      const shift = centre(bins.map((b) => b.live)) - centre(bins.map((b) => b.reference));
      if (f === 'f3') assert.ok(shift > 2, `f3's live bars sit above the reference (by ${shift} bins)`);
      else assert.ok(Math.abs(shift) < 1, `f0 is not shifted (${shift} bins)`);
    }
    await page.getByRole('button', { name: 'f3', exact: true }).click();
    await page.getByRole('figure', { name: 'f3: reference vs live share of rows per bin' }).waitFor();
    await assertLabelled(page, 'drift-histogram');
    await page.screenshot({ path: path.join(ARTIFACTS, 'drift-histogram-1280.png'), fullPage: true });
    // FLOTILLA_DOCS_SCREENSHOTS=1 refreshes the README's picture of the overlay.
    if (process.env.FLOTILLA_DOCS_SCREENSHOTS === '1') await copyFile(path.join(ARTIFACTS, 'drift-histogram-1280.png'), path.join(REPO, 'docs', 'screenshots', 'drift-histogram.png'));
  });

  test('device page: CPU, memory, outbox backlog and inference rate per minute, as the series API computes them', async () => {
    const d = devices[0];
    // One report in each of the last three whole minutes, away from the minute's edges.
    const base = Math.floor(Date.now() / MINUTE) * MINUTE - 3 * MINUTE;
    const reports = [
      { at: new Date(base + 20_000), inferences: 120, errors: { timeout: 6 }, cpu: 0.2, rssBytes: 90e6, monitoring: { outboxPending: 3, outboxPendingBytes: 300, outboxDropped: 0, outboxCorrupt: 0, statsDropped: 0 } },
      { at: new Date(base + MINUTE + 20_000), inferences: 300, cpu: 0.6, rssBytes: 120e6, monitoring: { outboxPending: 40, outboxPendingBytes: 4000, outboxDropped: 0, outboxCorrupt: 0, statsDropped: 0 } },
      { at: new Date(base + 2 * MINUTE + 20_000), inferences: 60, cpu: 0.4, rssBytes: 100e6, monitoring: { outboxPending: 0, outboxPendingBytes: 0, outboxDropped: 0, outboxCorrupt: 0, statsDropped: 0 } },
    ];
    for (const r of reports) await publish(d, 'telemetry', telemetryMessage({ deviceId: d.id, seq: ++seq, intervalS: 30, ...r }));
    const series = await waitFor(async () => {
      const s = (await cp.api('GET', `/api/v1/telemetry/series?device=${d.id}&window=15m`)).body;
      return s.points?.length === 3 ? s : null;
    }, 'three minutes of telemetry', 20_000);
    assert.equal(series.stepS, 60);
    assert.deepEqual(series.points.map((p: { t: string }) => Date.parse(p.t)), [base, base + MINUTE, base + 2 * MINUTE]);
    assert.deepEqual(series.points.map((p: { inferencesPerSecond: number }) => p.inferencesPerSecond), [4, 10, 2]);
    assert.deepEqual(series.points.map((p: { errorsPerSecond: number }) => p.errorsPerSecond), [0.2, 0, 0]);
    assert.deepEqual(series.points.map((p: { cpuMax: number }) => p.cpuMax), [0.2, 0.6, 0.4]);
    assert.deepEqual(series.points.map((p: { rssMaxBytes: number }) => p.rssMaxBytes), [90e6, 120e6, 100e6]);
    assert.deepEqual(series.points.map((p: { outboxPendingMax: number }) => p.outboxPendingMax), [3, 40, 0]);
    assert.equal((await cp.api('GET', '/api/v1/telemetry/series?device=nope')).status, 404);
    assert.equal((await cp.api('GET', `/api/v1/telemetry/series?device=${d.id}&window=soon`)).status, 400);

    await page.goto(`${cp.url}/devices/${d.id}`);
    await page.getByRole('heading', { name: 'Telemetry', exact: true }).waitFor();
    const group = page.getByRole('group', { name: 'Per 1 min series' });
    await group.waitFor();
    assert.equal(await group.getAttribute('data-points'), '3');
    for (const title of ['Inference rate per 1 min', 'CPU (%)', 'Memory (MB)', 'Outbox backlog (messages)']) await group.getByRole('figure', { name: title }).locator('canvas').first().waitFor();
    await assertLabelled(page, 'device-series');
    await page.screenshot({ path: path.join(ARTIFACTS, 'device-series-1280.png'), fullPage: true });
  });

  test('models: the lineage graph draws parent → child and each bundle beside its version; a node selects the version', async () => {
    const pushed = await cp.api('POST', '/api/v1/models/tab/versions?parent=tab%401', { body: gemmModel({ seed: 2 }) as unknown as BodyInit });
    assert.equal(pushed.status, 201, JSON.stringify(pushed.body));
    const { definition, labels } = await loadBundleDefinition(path.join(REPO, 'firmware-bundles', 'tabular-demo', 'bundle.json'));
    const built = await cp.api('POST', '/api/v1/bundles', { json: { model: 'tab@2', definition, labels } });
    assert.equal(built.status, 201, JSON.stringify(built.body));
    bundle2Id = built.body.id;
    await page.goto(cp.url + '/models');
    const graph = page.getByRole('group', { name: 'Lineage graph' });
    await graph.waitFor();
    const versions = (await cp.api('GET', '/api/v1/models/tab/versions')).body.versions as Array<{ ref: string; parent: string | null }>;
    const bundles = (await cp.api('GET', '/api/v1/bundles')).body.bundles as Array<{ id: string; model: string }>;
    await graph.locator(`[data-node="bundle:${bundle2Id}"]`).waitFor();
    const nodes = await graph.locator('[data-node]').evaluateAll((gs) => gs.map((g) => g.getAttribute('data-node')).sort());
    assert.deepEqual(nodes, [...versions.map((v) => v.ref), ...bundles.map((b) => `bundle:${b.id}`)].sort());
    const edges = await graph.locator('g.edge').evaluateAll((gs) => gs.map((g) => `${g.getAttribute('data-from')} → ${g.getAttribute('data-to')} (${g.getAttribute('data-edge')})`).sort());
    const expected = [
      ...versions.filter((v) => v.parent).map((v) => `${v.parent} → ${v.ref} (child)`),
      ...bundles.map((b) => `${b.model} → bundle:${b.id} (bundle)`),
    ].sort();
    assert.deepEqual(edges, expected);
    await graph.getByRole('button', { name: 'Lineage node tab@2' }).click();
    await page.getByRole('heading', { level: 2, name: /^tab@2/ }).waitFor();
    await assertLabelled(page, 'models-lineage');
    await page.screenshot({ path: path.join(ARTIFACTS, 'models-lineage-1280.png'), fullPage: true });
  });

  test('models: the evaluation report against its baseline — metrics side by side, fairness gaps and permutation importance as the API stores them', async () => {
    const csv = tabularToCsv(makeTabularRows({ n: 300, seed: 5 }));
    const ds = await cp.api('POST', '/api/v1/datasets/val/versions?group=region', { body: csv, headers: { 'content-type': 'text/csv' } });
    assert.equal(ds.status, 201, JSON.stringify(ds.body));
    const ev = await cp.api('POST', '/api/v1/models/tab/versions/2/evaluate', { json: { dataset: 'val@1' } });
    assert.equal(ev.status, 200, JSON.stringify(ev.body));
    const report = (await cp.api('GET', '/api/v1/models/tab/versions/2')).body.evaluation;
    assert.ok(report.governance.importance.features.length > 0, 'the API has importance to show');
    await page.goto(cp.url + '/models');
    await page.getByRole('group', { name: 'Lineage graph' }).getByRole('button', { name: 'Lineage node tab@2' }).click();
    const table = page.getByRole('table', { name: 'Evaluation against the baseline' });
    await table.waitFor();
    const accuracyRow = await table.getByRole('row').filter({ hasText: /^accuracy/ }).first().locator('td').allTextContents();
    assert.deepEqual(accuracyRow, ['accuracy', report.metrics.accuracy.toFixed(4), report.baselineMetrics ? report.baselineMetrics.accuracy.toFixed(4) : '—']);
    const bars = await page.getByRole('figure', { name: 'Permutation importance' }).locator('[data-feature]').evaluateAll((rows) => rows.map((r) => [r.getAttribute('data-feature'), r.querySelector('.mono')?.textContent]));
    assert.deepEqual(bars, report.governance.importance.features.map((f: { feature: string; mean: number }) => [f.feature, f.mean.toFixed(4)]));
    const gaps = page.getByRole('table', { name: 'Fairness gaps' });
    await gaps.getByRole('cell', { name: 'region' }).waitFor();
    await assertLabelled(page, 'models-evaluation');
  });

  test('rollouts: each gate\'s measured value against its threshold, as the last check has them', async () => {
    const r = await cp.api('POST', '/api/v1/rollouts', { json: { bundle: bundle2Id, cohort: 'lab', stages: [0.5, 1], bakeS: 3600, gates: { maxFailedUpdates: 0, maxErrorRate: 0.05 } } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    await waitFor(async () => (await cp.api('GET', `/api/v1/rollouts/${r.body.id}`)).body.lastCheck, 'the first gate check', 20_000);
    await page.goto(cp.url + '/rollouts');
    const table = page.getByRole('table', { name: `Gates of rollout ${r.body.id}` });
    await table.waitFor();
    // Every gate of the server's last check, as the server words it (server/rollouts/rollout-gates.ts).
    // Compared until page and API agree (a scheduler tick may rewrite the check between the two reads).
    const expectedCells = (g: { value: number | null; threshold: string; status: string }) => [
      g.value === null ? 'not measured yet' : Number.isInteger(g.value) ? String(g.value) : g.value.toFixed(4),
      g.threshold,
      { pass: 'passing', fail: 'failing', waiting: 'waiting', skipped: 'skipped' }[g.status] ?? g.status,
    ];
    let last = '';
    await waitFor(async () => {
      const gates = (await cp.api('GET', `/api/v1/rollouts/${r.body.id}`)).body.lastCheck.gates as Array<{ name: string; value: number | null; threshold: string; status: string }>;
      const want = gates.map((g) => [g.name, ...expectedCells(g)]);
      const have = await Promise.all(gates.map(async (g) => [g.name, ...(await table.locator(`[data-gate="${g.name}"] td`).allInnerTexts()).map((t, i) => (i === 2 ? t.trim().split(/\s/)[0] : t.trim()))]));
      last = JSON.stringify({ want, have });
      return gates.some((g) => g.name === 'errorRate') && JSON.stringify(want) === JSON.stringify(have);
    }, 'the gates table shows the last check', 20_000).catch((err) => assert.fail(`${(err as Error).message}: ${last}`));
    await assertLabelled(page, 'rollout-gates');
    await page.screenshot({ path: path.join(ARTIFACTS, 'rollout-gates-1280.png'), fullPage: true });
    assert.equal((await cp.api('POST', `/api/v1/rollouts/${r.body.id}/abort`, { json: {} })).status, 200);
  });

  test('retraining: create, disable and remove a policy from the UI; a bad cron shows the server\'s message', async () => {
    const csv = rowsToCsv(generateRows(50, 3));
    const ds = await cp.api('POST', '/api/v1/datasets/tab-train/versions', { body: csv, headers: { 'content-type': 'text/csv' } });
    assert.ok(ds.status === 201, JSON.stringify(ds.body));
    await page.goto(cp.url + '/retraining');
    const form = page.getByRole('form', { name: 'Retraining policy of tab' });
    await form.getByText('tab has no retraining policy').waitFor();
    await form.getByLabel('Dataset name').fill('tab-train');
    await form.getByLabel('Cron schedule (empty: none)').fill('every night');
    await form.getByRole('button', { name: 'Create policy' }).click();
    await form.getByRole('alert').filter({ hasText: 'not a valid cron expression' }).waitFor();
    assert.equal((await cp.api('GET', '/api/v1/models/tab/retrain-policy')).status, 404);
    await form.getByLabel('Cron schedule (empty: none)').fill('0 3 * * *');
    await form.getByLabel('Drift trigger: alert open for (s, empty: none)').fill('600');
    await form.getByRole('button', { name: 'Create policy' }).click();
    await form.getByRole('status').filter({ hasText: 'Saved the policy of tab.' }).waitFor();
    const saved = (await cp.api('GET', '/api/v1/models/tab/retrain-policy')).body;
    assert.equal(saved.enabled, true);
    assert.equal(saved.cron, '0 3 * * *');
    assert.equal(saved.driftOpenForS, 600);
    assert.deepEqual(saved.data, { dataset: 'tab-train', includeSamples: false, includeLabels: false });
    assert.equal(saved.trainer.kind, 'builtin');
    await form.getByRole('button', { name: 'Disable policy' }).click();
    await form.getByRole('status').filter({ hasText: 'Disabled the policy of tab.' }).waitFor();
    assert.equal((await cp.api('GET', '/api/v1/models/tab/retrain-policy')).body.enabled, false);
    await form.getByRole('button', { name: 'Enable policy' }).waitFor();
    await assertLabelled(page, 'retraining-policy');
    await page.screenshot({ path: path.join(ARTIFACTS, 'retraining-policy-1280.png'), fullPage: true });
    page.once('dialog', (d) => void d.accept());
    await form.getByRole('button', { name: 'Remove policy' }).click();
    await form.getByRole('status').filter({ hasText: 'Removed the policy of tab.' }).waitFor();
    assert.equal((await cp.api('GET', '/api/v1/models/tab/retrain-policy')).status, 404);
  });

  test('live: with polling off, a device going offline and a new deployment reach open pages through the event stream, without a reload', async () => {
    assert.equal(await page.evaluate(() => sessionStorage.getItem('flotilla.poll')), 'off');
    await page.goto(cp.url + '/');
    const table = page.getByRole('table', { name: 'Devices' });
    const row = table.getByRole('row').filter({ has: page.getByRole('link', { name: devices[1].name, exact: true }) });
    await row.getByRole('img', { name: 'online' }).waitFor();
    await page.getByRole('status').filter({ hasText: 'live' }).waitFor();
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 1));
    await devices[1].client.endAsync();
    await row.getByRole('img', { name: 'offline' }).waitFor();
    assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 1, 'the page was not reloaded');

    await page.getByRole('link', { name: 'Cohorts & deployments' }).click();
    await page.getByRole('heading', { level: 1, name: 'Cohorts & deployments' }).waitFor();
    const before = (await cp.api('GET', '/api/v1/deployments')).body.deployments.length;
    await page.locator('[data-deployment]').nth(before - 1).waitFor();
    const created = await cp.api('POST', '/api/v1/deployments', { json: { bundle: bundleId, cohort: 'yard' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await page.locator(`[data-deployment="${created.body.id}"]`).waitFor();
    assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 1, 'the page was not reloaded');
  });
});
