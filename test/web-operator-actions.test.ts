// Operator actions in the console, in Chromium against a real control plane (devices enrolled through
// the API; two of them connected over real MQTT to send telemetry): approve and revoke devices from the
// fleet table; pause, resume, abort and roll back rollouts; start a rollout with a shadow stage and the
// newer gates; build a bundle from a definition; upload a version with its progress bar; optimize with
// the CLI's options and read the report; and the device page's errors-by-reason chart over 15 min /
// 1 h / 24 h / 7 d. Each action's effect is read back from the API, not from the page.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import type { Page, Route } from 'playwright-core';
import { waitFor } from '../agent/testing/harness.ts';
import { createKeyList, signKeyList } from '../firmware-bundles/key-list.ts';
import { generateKeyPair } from '../firmware-bundles/keys.ts';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { summaryRows } from '../web/src/pages/optimize-summary.ts';
import { ARTIFACTS, assertLabelled, ensureConsoleBuilt, launchBrowser, REPO, requireChromium } from './helpers/browser.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { telemetryMessage } from './helpers/device-stats.ts';
import { gemmModel } from './helpers/models.ts';

const FACTS = { arch: 'arm64', cpus: 4, memoryBytes: 4 * 2 ** 30, os: 'linux', agentVersion: '0.1.0' };
const MINUTE = 60_000;

describe('console operator actions in Chromium', () => {
  let cp: TestPlane;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let page: Page;
  let bundle1: string;
  let bundle2: string;
  const lab: Array<{ id: string; name: string; client: MqttClient }> = [];

  const ok = async (method: string, p: string, json?: unknown) => {
    const r = await cp.api(method, p, json === undefined ? {} : { json });
    assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const open = async (pathname: string, heading: string) => {
    await page.goto(cp.url + pathname);
    await page.getByRole('heading', { level: 1, name: heading }).waitFor();
  };
  /** Presses Tab until the focused control's accessible name is `name` (at most `max` presses): keyboard only. */
  const tabTo = async (name: string, max = 120) => {
    for (let i = 0; i < max; i++) {
      await page.keyboard.press('Tab');
      const focused = await page.evaluate(() => {
        const el = document.activeElement as (HTMLElement & { labels?: NodeListOf<HTMLLabelElement> }) | null;
        return el?.getAttribute('aria-label') ?? el?.labels?.[0]?.textContent?.trim() ?? el?.textContent?.trim() ?? '';
      });
      if (focused === name || focused.startsWith(`${name}\n`)) return;
    }
    assert.fail(`Tab never reached "${name}"`);
  };
  const buildBundle = async (model: string) => {
    const { definition, labels } = await loadBundleDefinition(path.join(REPO, 'firmware-bundles', 'tabular-demo', 'bundle.json'));
    return (await ok('POST', '/api/v1/bundles', { model, definition, labels })).id as string;
  };

  before(async () => {
    requireChromium();
    ensureConsoleBuilt();
    await mkdir(ARTIFACTS, { recursive: true });
    cp = await startControlPlane({ ingestFlushMs: 40, driftCron: 'off', schedulerTickMs: 200 });
    for (const seed of [1, 2]) assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel({ seed }) as unknown as BodyInit })).status, 201);
    const root = generateKeyPair();
    const release = await ok('POST', '/api/v1/keys/release');
    const list = createKeyList({ version: 1, root, keys: [release], threshold: 1, expiresAt: new Date(Date.now() + 86400e3) });
    await ok('PUT', '/api/v1/keys/keylist', signKeyList(list, root.privateKeyPem));
    bundle1 = await buildBundle('tab@1');
    bundle2 = await buildBundle('tab@2');
    await ok('POST', '/api/v1/cohorts', { name: 'lab', selector: 'site=lab' });
    // Two approved lab devices on MQTT (they report telemetry), two more waiting for approval at the dock.
    const labToken = (await ok('POST', '/api/v1/enroll-tokens', { labels: { site: 'lab' }, maxUses: 2 })).token;
    for (let i = 1; i <= 2; i++) {
      const r = await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: labToken, facts: FACTS, name: `lab-${i}` } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const client = await mqtt.connectAsync(cp.mqttUrl, { clientId: r.body.deviceId, username: r.body.deviceId, password: r.body.mqtt.password, reconnectPeriod: 0 });
      lab.push({ id: r.body.deviceId, name: `lab-${i}`, client });
    }
    const dockToken = (await ok('POST', '/api/v1/enroll-tokens', { labels: { site: 'dock' }, maxUses: 3, autoApprove: false })).token;
    for (let i = 1; i <= 3; i++) assert.equal((await cp.api('POST', '/api/v1/enroll', { token: null, json: { token: dockToken, facts: FACTS, name: `dock-${i}` } })).status, 201);
    // The lab runs bundle 1, so a rollout of bundle 2 has something to roll back to.
    await ok('POST', '/api/v1/deployments', { bundle: bundle1, cohort: 'lab' });
    // ...and says so, as an agent with shadow evaluation does, so a shadow rollout can start on it.
    const modelSha256 = (await ok('GET', '/api/v1/models/tab/versions/1')).sha256;
    for (const d of lab) {
      const at = new Date().toISOString();
      const reported = { v: 1, at, agentVersion: '0.2.0', state: 'active', active: { bundleId: bundle1, bundleName: 'tabular-demo', model: { name: 'tab', version: 1 }, counter: 1, modelSha256, activatedAt: at }, desired: null, lastError: null, transitions: [], capabilities: ['shadow'] };
      await d.client.publishAsync(deviceTopic(d.id, 'reported'), JSON.stringify(reported), { qos: 1, retain: true });
    }
    await waitFor(async () => ((await ok('GET', '/api/v1/fleet')).devices as Array<{ active: { bundleId: string } | null }>).filter((d) => d.active?.bundleId === bundle1).length === 2, 'the lab reports bundle 1 active', 20_000);
    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.setDefaultTimeout(30_000);
    await page.goto(cp.url + '/');
    await page.getByLabel('API token').fill(cp.adminToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Fleet' }).waitFor();
  });

  after(async () => {
    await browser?.close();
    for (const d of lab) await d.client.endAsync().catch(() => undefined);
    await cp?.stop();
  });

  test('fleet: approve the pending devices, then revoke one; the API has the new states', async () => {
    const status = async (name: string) => ((await ok('GET', '/api/v1/devices?selector=site%3Ddock')).devices as Array<{ name: string; status: string }>).find((d) => d.name === name)?.status;
    assert.equal(await status('dock-1'), 'pending');
    await open('/', 'Fleet');
    await page.getByLabel('Label selector').fill('site=dock');
    await page.getByText('Showing 3 of 5').waitFor();
    const table = page.getByRole('table', { name: 'Devices' });
    await table.getByRole('link', { name: /^dock-1/ }).getByText('pending').waitFor();
    await page.getByRole('checkbox', { name: 'Select all shown rows' }).check();
    const bulk = page.getByRole('region', { name: 'Actions on the selected devices' });
    await bulk.getByText('3 selected').waitFor();
    await bulk.getByRole('button', { name: 'Approve' }).click();
    await bulk.getByRole('status').filter({ hasText: '3 done.' }).waitFor();
    for (const n of ['dock-1', 'dock-2', 'dock-3']) assert.equal(await status(n), 'approved', n);
    await table.getByRole('link', { name: 'dock-1', exact: true }).waitFor(); // the pending badge is gone
    await bulk.getByRole('button', { name: 'Clear selection' }).click();
    await table.getByRole('checkbox', { name: 'Select dock-2' }).check();
    await bulk.getByText('1 selected').waitFor();
    page.once('dialog', (d) => void d.accept());
    await bulk.getByRole('button', { name: 'Revoke' }).click();
    await bulk.getByRole('status').filter({ hasText: '1 done.' }).waitFor();
    assert.equal(await status('dock-2'), 'revoked');
    assert.equal(await status('dock-1'), 'approved');
    await table.getByRole('link', { name: /^dock-2/ }).getByText('revoked').waitFor();
    await assertLabelled(page, 'fleet-bulk');
    await page.getByLabel('Label selector').fill('');
  });

  test('rollouts: pause, resume and abort from the card; roll back a second one — states and desired bundles as the API has them', async () => {
    const a = await ok('POST', '/api/v1/rollouts', { bundle: bundle2, cohort: 'lab', stages: [0.5, 1], bakeS: 3600 });
    await open('/rollouts', 'Rollouts');
    const card = page.locator(`article[data-rollout="${a.id}"]`);
    const apiStatus = async (id: string) => (await ok('GET', `/api/v1/rollouts/${id}`)).status as string;
    await card.getByRole('button', { name: 'Pause' }).click();
    await card.getByRole('button', { name: 'Resume' }).waitFor();
    assert.equal(await apiStatus(a.id), 'paused');
    await card.getByRole('button', { name: 'Resume' }).click();
    await card.getByRole('button', { name: 'Pause' }).waitFor();
    assert.equal(await apiStatus(a.id), 'running');
    page.once('dialog', (d) => void d.accept());
    await card.getByRole('button', { name: 'Abort' }).click();
    await card.getByText('aborted', { exact: true }).waitFor();
    assert.equal(await apiStatus(a.id), 'aborted');
    assert.equal(await card.getByRole('button', { name: 'Abort' }).count(), 0, 'an ended rollout offers no actions');

    const b = await ok('POST', '/api/v1/rollouts', { bundle: bundle2, cohort: 'lab', stages: [0.5, 1], bakeS: 3600 });
    const desiredOf = async () => ((await ok('GET', '/api/v1/fleet')).devices as Array<{ id: string; desired: { bundleId: string } | null }>).filter((d) => lab.some((l) => l.id === d.id)).map((d) => d.desired?.bundleId);
    await waitFor(async () => (await desiredOf()).includes(bundle2), 'the first stage device is given bundle 2', 20_000);
    await page.reload();
    const card2 = page.locator(`article[data-rollout="${b.id}"]`);
    page.once('dialog', (d) => void d.accept());
    await card2.getByRole('button', { name: 'Roll back' }).click();
    await card2.getByText('aborted', { exact: true }).waitFor();
    assert.equal(await apiStatus(b.id), 'aborted');
    assert.deepEqual(await desiredOf(), [bundle1, bundle1], 'every lab device is meant to run bundle 1 again');
    const audit = (await ok('GET', '/api/v1/audit?limit=20')).entries as Array<{ action: string; target: string; details: { rollback?: boolean } | null }>;
    assert.equal(audit.find((e) => e.action === 'rollout.abort' && e.target === b.id)?.details?.rollback, true);
    assert.equal(audit.find((e) => e.action === 'rollout.abort' && e.target === a.id)?.details?.rollback, false);
  });

  test('rollouts: start one with a shadow stage and the newer gates; the API stores what was typed; a bad stage timeout shows the server\'s reason', async () => {
    await open('/rollouts', 'Rollouts');
    const form = page.getByRole('form', { name: 'Start a rollout' });
    await form.getByRole('combobox', { name: /^Bundle\b/ }).selectOption(bundle2);
    await form.getByRole('combobox', { name: /^Cohort\b/ }).selectOption('lab');
    await form.getByLabel('Stages (fractions)').fill('0.5, 1');
    await form.getByLabel('Bake time (s)').fill('600');
    await form.getByLabel('Min update success ratio (0–1)').fill('0.9');
    await form.getByLabel('Max latency ratio (stage p95 / before)').fill('1.3');
    await form.getByLabel('Stage timeout (s)').fill('60');
    await form.getByLabel('Fail a stage on a drift alert for the new version').uncheck();
    await form.getByLabel('Shadow stage first').check();
    await form.getByLabel('Shadow share of requests (%)').fill('25');
    await form.getByLabel('Shadow duration (s)').fill('900');
    await form.getByLabel('Shadow report window (s)').fill('30');
    await form.getByLabel('Min agreement (0–1)').fill('0.97');
    await form.getByLabel('Max shadow latency ratio').fill('2');
    await assertLabelled(page, 'start-rollout');
    await form.getByRole('button', { name: 'Start rollout' }).click();
    // 60 s is shorter than the 600 s bake: the server refuses and the form says why.
    await form.getByRole('alert').filter({ hasText: 'gates.stageTimeoutS (60 s) is shorter than a stage must run' }).waitFor();
    const ids = async () => ((await ok('GET', '/api/v1/rollouts')).rollouts as Array<{ id: string }>).map((x) => x.id);
    const before = await ids();
    await form.getByLabel('Stage timeout (s)').fill('7200');
    await form.getByRole('button', { name: 'Start rollout' }).click();
    const r = { id: await waitFor(async () => (await ids()).find((id) => !before.includes(id)), 'the rollout exists', 20_000) };
    try {
      const got = await ok('GET', `/api/v1/rollouts/${r.id}`);
      assert.equal(got.bakeS, 600);
      assert.deepEqual(got.stages, [0.5, 1]);
      assert.deepEqual(got.shadow, { share: 0.25, durationS: 900, windowS: 30 });
      assert.equal(got.phase, 'shadow');
      for (const [k, v] of Object.entries({ minUpdateSuccessRatio: 0.9, maxLatencyRatio: 1.3, stageTimeoutS: 7200, drift: false, minAgreement: 0.97, maxShadowLatencyRatio: 2, onFailure: 'pause' })) assert.equal(got.gates[k], v, k);
      await page.locator(`article[data-rollout="${r.id}"] [data-shadow]`).getByText('25 % of requests for 900 s (windows of 30 s), running').waitFor();
      await page.screenshot({ path: path.join(ARTIFACTS, 'rollout-start-shadow-1280.png'), fullPage: true });
    } finally {
      await ok('POST', `/api/v1/rollouts/${r.id}/abort`, {}); // the cohort is free for the next test either way
    }
  });

  test('keyboard only: filter the fleet, select a device in the table, label it with the form; pause a rollout', async () => {
    await open('/', 'Fleet');
    await tabTo('Label selector');
    await page.keyboard.type('site=lab');
    await page.getByText('Showing 2 of 5').waitFor();
    await tabTo('Select lab-2');
    await page.keyboard.press('Space');
    await page.getByText('1 selected', { exact: true }).waitFor();
    await tabTo('Labels (k=v, -k removes)');
    await page.keyboard.type('ring=keyboard');
    await page.keyboard.press('Enter');
    await page.getByRole('status').filter({ hasText: '1 done.' }).waitFor();
    const labelled = (await ok('GET', '/api/v1/devices?selector=ring%3Dkeyboard')).devices as Array<{ name: string }>;
    assert.deepEqual(labelled.map((d) => d.name), ['lab-2']);

    const r = await ok('POST', '/api/v1/rollouts', { bundle: bundle2, cohort: 'lab', stages: [0.5, 1], bakeS: 3600 });
    await open('/rollouts', 'Rollouts');
    await page.locator(`article[data-rollout="${r.id}"]`).getByRole('button', { name: 'Pause' }).waitFor();
    await tabTo('Pause');
    await page.keyboard.press('Enter');
    await waitFor(async () => (await ok('GET', `/api/v1/rollouts/${r.id}`)).status === 'paused', 'the rollout is paused', 20_000);
    await page.locator(`article[data-rollout="${r.id}"]`).getByRole('button', { name: 'Resume' }).waitFor();
    await ok('POST', `/api/v1/rollouts/${r.id}/abort`, {});
  });

  test('sign-in at 1280 and 820 px: every control labelled', async () => {
    const fresh = await browser.context.newPage(); // sessionStorage is per tab: a new tab is signed out
    try {
      await fresh.goto(cp.url + '/');
      await fresh.getByLabel('API token').waitFor();
      await assertLabelled(fresh, 'sign-in');
      for (const width of [1280, 820]) {
        await fresh.setViewportSize({ width, height: width === 820 ? 1000 : 800 });
        await fresh.screenshot({ path: path.join(ARTIFACTS, `sign-in-${width}.png`) });
      }
    } finally {
      await fresh.close();
    }
  });

  test('models: build a bundle from a definition typed into the form; a broken definition is a readable error', async () => {
    await open('/models', 'Models');
    await page.getByRole('button', { name: 'Version tab@1' }).click();
    await page.getByRole('heading', { level: 2, name: /^tab@1/ }).waitFor();
    await page.getByText('Build a bundle from a definition').click();
    const box = page.getByLabel(/^Bundle definition/);
    await box.fill('{"name": ');
    await page.getByRole('button', { name: 'Build bundle for tab@1' }).click();
    await page.getByRole('alert').filter({ hasText: 'The definition is not JSON' }).waitFor();
    const def = JSON.parse(await readFile(path.join(REPO, 'firmware-bundles', 'tabular-demo', 'bundle.json'), 'utf8'));
    def.name = 'tab-from-ui';
    def.postprocess.labels = (await readFile(path.join(REPO, 'firmware-bundles', 'tabular-demo', 'labels.txt'), 'utf8')).trim().split('\n');
    await box.fill(JSON.stringify(def, null, 2));
    await page.getByRole('button', { name: 'Build bundle for tab@1' }).click();
    const done = page.getByRole('status').filter({ hasText: /^Built bundle tab-from-ui \(/ });
    await done.waitFor();
    const id = /\(([^)]+)\)/.exec((await done.textContent()) ?? '')![1];
    const built = ((await ok('GET', '/api/v1/bundles')).bundles as Array<{ id: string; name: string; modelName: string; modelVersion: number }>).find((b) => b.id === id);
    assert.ok(built, `bundle ${id} is in the API`);
    assert.deepEqual([built.name, built.modelName, built.modelVersion], ['tab-from-ui', 'tab', 1]);
  });

  test('models: upload a version with a progress bar; the API has the same bytes under the given parent', async () => {
    const bytes = gemmModel({ nIn: 8, nOut: 3, seed: 7 });
    await open('/models', 'Models');
    const form = page.getByRole('form', { name: 'Upload a version' });
    await form.getByLabel('Model name').fill('tab');
    await form.getByLabel('Parent (optional, name@N)').fill('tab@1');
    await form.getByLabel('ONNX file').setInputFiles({ name: 'tab-v3.onnx', mimeType: 'application/octet-stream', buffer: Buffer.from(bytes) });
    // Hold the request at the network layer until the page has shown the progress bar.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    await page.route('**/api/v1/models/tab/versions?**', async (route: Route) => {
      if (route.request().method() !== 'POST') return route.continue();
      await held;
      await route.continue();
    });
    await form.getByRole('button', { name: 'Upload' }).click();
    await form.getByRole('progressbar', { name: 'Upload progress' }).waitFor();
    release();
    await form.getByRole('status').filter({ hasText: 'Uploaded tab@3.' }).waitFor();
    await page.unrouteAll();
    assert.equal(await form.getByRole('progressbar').count(), 0, 'the bar goes away when the upload ends');
    const v = await ok('GET', '/api/v1/models/tab/versions/3');
    assert.equal(v.sha256, createHash('sha256').update(bytes).digest('hex'));
    assert.equal(v.parent, 'tab@1');
  });

  test('models: optimize with the CLI\'s options (int8 per channel, integer form) and read the report the API stored', async () => {
    await open('/models', 'Models');
    await page.getByRole('button', { name: 'Version tab@2' }).click();
    await page.getByRole('heading', { level: 2, name: /^tab@2/ }).waitFor();
    await page.getByText('Optimize (int8 / prune)').click();
    const form = page.getByRole('form', { name: 'Optimize' });
    await form.getByLabel('Quantize to int8').check();
    await form.getByLabel('Per channel').check();
    await form.getByLabel('Integer compute').check();
    assert.equal(await form.getByLabel('Structured').isDisabled(), true, 'structured pruning needs a sparsity');
    await assertLabelled(page, 'optimize-form');
    await form.getByRole('button', { name: 'Optimize' }).click();
    const report = page.getByRole('region', { name: 'Optimize report' });
    await report.waitFor({ timeout: 60_000 });
    const ref = await report.getAttribute('data-variant');
    assert.ok(ref?.startsWith('tab@'), String(ref));
    const v = await ok('GET', `/api/v1/models/tab/versions/${ref!.slice(4)}`);
    assert.equal(v.parent, 'tab@2');
    assert.deepEqual([v.recipe?.quantize?.form, v.recipe?.quantize?.perChannel], ['integer', true], 'the options reached the server');
    await report.getByRole('status').filter({ hasText: `Registered ${ref} (${v.variant}): ${v.status === 'ready' ? 'ready' : 'rejected'}` }).waitFor();
    const table = report.getByRole('table', { name: `Optimize report of ${ref}` });
    const want = summaryRows(v.evaluation);
    assert.ok(want.some(([m]) => m === 'size'), 'the stored report has sizes to show');
    const have = await table.locator('tbody tr').evaluateAll((rows) => rows.map((r) => [...r.children].map((c) => c.textContent?.trim() ?? '')));
    assert.deepEqual(have, want);
    await page.screenshot({ path: path.join(ARTIFACTS, 'optimize-report-1280.png'), fullPage: true });
  });

  test('device page: errors by reason per minute as the series API has them, and the 1 h / 24 h / 7 d ranges switch the series', async () => {
    const d = lab[0];
    const base = Math.floor(Date.now() / MINUTE) * MINUTE - 3 * MINUTE;
    const reports: Array<{ at: Date; inferences: number; errors: Record<string, number> }> = [
      { at: new Date(base + 20_000), inferences: 100, errors: { timeout: 4, bad_input: 1 } },
      { at: new Date(base + MINUTE + 20_000), inferences: 100, errors: { timeout: 2 } },
      { at: new Date(base + 2 * MINUTE + 20_000), inferences: 100, errors: {} },
      // Three hours back: inside 24 h and 7 d, outside 15 min and 1 h.
      { at: new Date(base - 180 * MINUTE), inferences: 50, errors: { runtime: 5 } },
    ];
    let seq = 0;
    for (const r of reports) await d.client.publishAsync(deviceTopic(d.id, 'telemetry'), JSON.stringify(telemetryMessage({ deviceId: d.id, seq: ++seq, intervalS: 30, ...r })), { qos: 1 });
    const series = (w: string) => ok('GET', `/api/v1/telemetry/series?device=${d.id}&window=${w}`);
    const reported = (x: { points: Array<{ reports: number }> }) => x.points.reduce((n, p) => n + p.reports, 0);
    await waitFor(async () => reported(await series('7d')) === 4, 'the four reports are stored', 20_000);
    const s15 = await series('15m');
    assert.deepEqual(s15.points.map((p: { errorsByReason: Record<string, number> }) => p.errorsByReason), [{ timeout: 4, bad_input: 1 }, { timeout: 2 }, {}]);

    await page.goto(`${cp.url}/devices/${d.id}`);
    const expected = (s: { points: Array<{ errorsByReason: Record<string, number> }> }) => {
      const reasons = [...new Set(s.points.flatMap((p) => Object.keys(p.errorsByReason)))];
      return Object.fromEntries(reasons.map((k) => [k, s.points.map((p) => p.errorsByReason[k] ?? 0)]));
    };
    for (const [button, w, step] of [['15 min', '15m', '1'], ['1 h', '1h', '1'], ['24 h', '24h', '2'], ['7 d', '7d', '14']] as const) {
      await page.getByRole('group', { name: 'Telemetry window' }).getByRole('button', { name: button, exact: true }).click();
      const api = await series(w);
      assert.equal(api.stepS, Number(step) * 60, w);
      const group = page.getByRole('group', { name: `Per ${step} min series` });
      await waitFor(async () => (await group.getAttribute('data-points').catch(() => null)) === String(api.points.length), `${w}: the page shows ${api.points.length} steps`, 20_000);
      const chart = group.getByRole('figure', { name: `Errors by reason per ${step} min` });
      await chart.locator('canvas').first().waitFor();
      const shown = JSON.parse((await group.locator('[data-errors]').getAttribute('data-errors')) ?? '{}');
      assert.deepEqual(shown, expected(api), `${w}: the chart's series are the API's`);
      if (w === '24h' || w === '7d') assert.ok('runtime' in shown, `${w} reaches back three hours`);
      else assert.ok(!('runtime' in shown), `${w} does not`);
    }
    await assertLabelled(page, 'device-errors');
    await page.screenshot({ path: path.join(ARTIFACTS, 'device-errors-by-reason-1280.png'), fullPage: true });
  });
});
