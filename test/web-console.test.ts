// The operator console in a real browser (Debian's Chromium through playwright-core) against a real
// control plane with two real agents and seeded devices: sign in, every page shows what the API says,
// a deployment made from the UI takes both agents to active without a reload, a viewer gets "your
// role cannot do this", controls are labelled (aria snapshot) and the keyboard reaches the navigation.
// Screenshots of each page at 1280×800 and 820 px go to test-artifacts/web/ (FLOTILLA_DOCS_SCREENSHOTS=1
// also refreshes docs/screenshots/fleet.png for the README).
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { AgentProcess, api as agentApi, freePort, waitFor } from '../agent/testing/harness.ts';
import { ARTIFACTS, assertLabelled, ensureConsoleBuilt, launchBrowser, REPO, requireChromium, signIn } from './helpers/browser.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { generateRows } from './helpers/device-stats.ts';
import { gemmModel, modelOutputs } from './helpers/models.ts';

const BUNDLE_DEF = path.join(REPO, 'firmware-bundles', 'tabular-demo');
const FACTS = { arch: 'arm64', cpus: 4, memoryBytes: 4 * 2 ** 30, os: 'linux', agentVersion: '0.1.0' };

describe('web console in Chromium', () => {
  let cp: TestPlane;
  let dir: string;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let context: BrowserContext;
  let page: Page;
  let viewerToken: string;
  let bundleId: string;
  let bundle2Id: string;
  const agents: Array<{ proc: AgentProcess; port: number; id?: string }> = [];

  const cli = async (...args: string[]) => {
    const r = await runCli(['--json', ...args], { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken, FLOTILLA_CONFIG_DIR: path.join(dir, 'cfg') });
    assert.equal(r.code, 0, `flotilla ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const ok = async (method: string, p: string, json?: unknown) => {
    const r = await cp.api(method, p, { json });
    assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const shoot = async (p: Page, name: string) => {
    await p.setViewportSize({ width: 1280, height: 800 });
    await p.screenshot({ path: path.join(ARTIFACTS, `${name}-1280.png`) });
    await p.setViewportSize({ width: 820, height: 1000 });
    await p.screenshot({ path: path.join(ARTIFACTS, `${name}-820.png`) });
    await p.setViewportSize({ width: 1280, height: 800 });
  };
  const open = async (p: Page, pathname: string, heading: string) => {
    await p.goto(cp.url + pathname);
    await p.getByRole('heading', { level: 1, name: heading }).waitFor();
  };

  before(async () => {
    requireChromium();
    ensureConsoleBuilt();
    await mkdir(ARTIFACTS, { recursive: true });
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-web-'));
    cp = await startControlPlane({ schedulerTickMs: 200, ingestFlushMs: 50, driftCron: 'off' });
    const keys = await cli('keys', 'init', '--root-key', path.join(dir, 'root.key'));
    await writeFile(path.join(dir, 'v1.onnx'), gemmModel({ seed: 1 }));
    await cli('models', 'push', path.join(dir, 'v1.onnx'), '--name', 'tabular-demo');
    // A reference profile first, so the bundle carries its layout and the agents send feature sketches.
    const refRows = generateRows(2000, 1).map((r) => r.values);
    const outputs = await modelOutputs(gemmModel({ seed: 1 }), refRows);
    await ok('POST', '/api/v1/models/tabular-demo/versions/1/reference', refRows.map((v, i) => ({ ...v, outputs: outputs[i] })));
    bundleId = (await cli('bundles', 'build', 'tabular-demo@1', '--def', BUNDLE_DEF)).id;
    await writeFile(path.join(dir, 'v2.onnx'), gemmModel({ seed: 2 }));
    await cli('models', 'push', path.join(dir, 'v2.onnx'), '--name', 'tabular-demo', '--parent', 'tabular-demo@1');
    bundle2Id = (await cli('bundles', 'build', 'tabular-demo@2', '--def', BUNDLE_DEF)).id;
    await ok('POST', '/api/v1/cohorts', { name: 'lab', selector: 'site=lab' });
    await ok('POST', '/api/v1/cohorts', { name: 'berlin', selector: 'site=berlin' });
    viewerToken = (await ok('POST', '/api/v1/tokens', { name: 'auditor', role: 'viewer' })).token;
    // Seeded devices (enrolled through the API, never connected) around the two real agents.
    for (const [site, hw, n] of [['berlin', 'rpi4', 6], ['munich', 'jetson', 4]] as const) {
      const t = (await ok('POST', '/api/v1/enroll-tokens', { labels: { site, hw } })).token;
      for (let i = 0; i < n; i++) await ok('POST', '/api/v1/enroll', { token: t, facts: FACTS, name: `${site}-${hw}-${i + 1}` });
    }
    const token = (await ok('POST', '/api/v1/enroll-tokens', { labels: { site: 'lab', hw: 'x86' }, maxUses: 2 })).token;
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const proc = new AgentProcess(
        ['--server', cp.url, '--enroll-token', token, '--data-dir', path.join(dir, `agent-${i}`), '--api-port', String(port), '--trust-root', keys.rootPublicKey, '--probation-ms', '200', '--reconnect-min-ms', '100', '--reconnect-max-ms', '1000', '--telemetry-interval-s', '1', '--stats-window-s', '2'],
        { FLOTILLA_AGENT_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG ?? 'warn' },
      ).start();
      agents.push({ proc, port });
    }
    await waitFor(async () => (await cp.api('GET', '/api/v1/devices?selector=site%3Dlab')).body.devices.filter((d: { online: boolean }) => d.online).length === 2, 'both agents online', 30_000);
    for (const a of agents) a.id = (await agentApi(a.port, 'GET', '/v1/status')).body.deviceId;
    browser = await launchBrowser();
    context = browser.context;
    page = await context.newPage();
    page.setDefaultTimeout(20_000);
  });

  after(async () => {
    await browser?.close();
    await Promise.all(agents.map((a) => a.proc.stop()));
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the console is served at / with its headers; /api misses stay JSON', async () => {
    const index = await fetch(cp.url + '/devices/some-device');
    assert.equal(index.status, 200);
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    assert.equal(index.headers.get('cross-origin-embedder-policy'), 'require-corp');
    const html = await index.text();
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(asset, html);
    const js = await fetch(cp.url + asset);
    assert.equal(js.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    const api = await fetch(cp.url + '/api/v1/nope');
    assert.equal(api.status, 404);
    assert.equal((await api.json()).error.code, 'not_found');
  });

  test('sign in with a token: kept in sessionStorage, never in the URL', async () => {
    await page.goto(cp.url + '/');
    await page.getByLabel('API token').fill('not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'token not recognised' }).waitFor();
    await assertLabelled(page, 'sign-in');
    await page.screenshot({ path: path.join(ARTIFACTS, 'sign-in-1280.png') });
    await page.getByLabel('API token').fill(cp.adminToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Fleet' }).waitFor();
    assert.ok(!page.url().includes(cp.adminToken));
    assert.equal(await page.evaluate(() => sessionStorage.getItem('flotilla.token')), cp.adminToken);
    assert.equal(await page.evaluate(() => localStorage.length), 0);
  });

  test('fleet: the table shows the API\'s devices; selector filter with error at the position; sort', async () => {
    const api = (await cp.api('GET', '/api/v1/fleet')).body.devices as Array<{ id: string; name: string | null; online: boolean }>;
    assert.equal(api.length, 12);
    await page.getByText(`Showing ${api.length} of ${api.length}`).waitFor();
    const table = page.getByRole('table', { name: 'Devices' });
    for (const d of api) assert.equal((await table.locator(`a[href="/devices/${d.id}"]`).innerText()).trim(), d.name ?? d.id);
    const summary = page.getByLabel('Fleet summary');
    assert.match(await summary.innerText(), new RegExp(`${api.length}\\s+devices`));
    assert.match(await summary.innerText(), new RegExp(`${api.filter((d) => d.online).length}\\s+online`));

    await page.getByLabel('Label selector').fill('site=berlin,hw in (rpi4');
    const err = page.locator('#selector-error');
    await err.waitFor();
    assert.match(await err.innerText(), /position \d+/);
    await page.getByLabel('Label selector').fill('site=berlin');
    await page.getByText('Showing 6 of 12').waitFor();
    await page.getByLabel('Label selector').fill('');
    await page.getByLabel('Search').fill('munich');
    await page.getByText('Showing 4 of 12').waitFor();
    await page.getByLabel('Search').fill('');

    await page.getByRole('button', { name: 'Sort by Device' }).click(); // asc → desc
    const firstName = await table.getByRole('row').nth(1).getByRole('link').innerText();
    const names = api.map((d) => d.name ?? d.id).sort((a, b) => b.toLowerCase().localeCompare(a.toLowerCase()));
    assert.equal(firstName.trim(), names[0]);
    await assertLabelled(page, 'fleet');
    await shoot(page, 'fleet');
  });

  test('fleet: select many and label them', async () => {
    await page.getByLabel('Label selector').fill('site=munich');
    await page.getByText('Showing 4 of 12').waitFor();
    await page.getByRole('checkbox', { name: 'Select all shown rows' }).check();
    await page.getByLabel('Labels (k=v, -k removes)').fill('ring=canary');
    await page.getByRole('button', { name: 'Apply labels' }).click();
    await page.getByText('4 done.').waitFor();
    const labelled = (await cp.api('GET', '/api/v1/devices?selector=ring%3Dcanary')).body.devices;
    assert.equal(labelled.length, 4);
    await page.getByLabel('Label selector').fill('');
  });

  test('device page: facts and labels as the API has them; ping answers', async () => {
    const id = agents[0].id!;
    const d = (await cp.api('GET', `/api/v1/devices/${id}`)).body;
    await page.getByRole('table', { name: 'Devices' }).locator(`a[href="/devices/${id}"]`).click();
    await page.getByRole('heading', { name: 'Identity and facts' }).waitFor();
    assert.match(page.url(), new RegExp(`/devices/${id}$`));
    assert.equal(await page.getByLabel('Labels (comma separated key=value)').inputValue(), Object.entries(d.labels).map(([k, v]) => `${k}=${v}`).join(', '));
    await page.getByText(id, { exact: true }).waitFor();
    await page.getByRole('button', { name: 'Ping' }).click();
    await page.getByRole('status').filter({ hasText: /ping: ok in \d+ ms/ }).waitFor({ timeout: 15_000 });
    await page.getByRole('heading', { name: 'Telemetry' }).waitFor();
    await assertLabelled(page, 'device');
    await shoot(page, 'device');
  });

  test('cohorts: selector preview as you type; deploy from the UI and watch both agents go active without a reload', async () => {
    await page.getByRole('link', { name: 'Cohorts & deployments' }).click();
    await page.getByRole('heading', { level: 1, name: 'Cohorts & deployments' }).waitFor();
    const cohorts = (await cp.api('GET', '/api/v1/cohorts')).body.cohorts as Array<{ name: string; selector: string }>;
    for (const c of cohorts) await page.getByRole('cell', { name: c.selector, exact: true }).waitFor();

    await page.getByLabel('Label selector').fill('site=berlin');
    await page.locator('#cohort-preview').getByText('Matches 6 devices now').waitFor();
    await page.getByLabel('Label selector').fill('site in (');
    await page.locator('#cohort-preview .selector-error').waitFor();
    await page.getByLabel('Label selector').fill('');

    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
    await page.getByRole('combobox', { name: /^Bundle\b/ }).selectOption(bundleId);
    await page.getByRole('combobox', { name: /^Cohort\b/ }).selectOption('lab');
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'created for 2 device(s)' }).waitFor();
    await page.locator('[data-state="active"]').filter({ hasText: 'active: 2' }).first().waitFor({ timeout: 60_000 });
    assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 42, 'the page was not reloaded');
    const fleet = (await cp.api('GET', '/api/v1/fleet')).body.devices as Array<{ id: string; cohorts: string[]; active: { bundleId: string; model: string; version: number } | null; desired: { bundleId: string; deploymentId: string } | null; updateState: string }>;
    const deps = (await cp.api('GET', '/api/v1/deployments')).body.deployments as Array<{ id: string }>;
    for (const a of agents) {
      const d = (await cp.api('GET', `/api/v1/devices/${a.id}`)).body;
      assert.equal(d.updateState, 'active');
      assert.equal(d.reported.active.bundleId, bundleId);
      // /api/v1/fleet says the same in one answer.
      const f = fleet.find((x) => x.id === a.id)!;
      assert.deepEqual(f.cohorts, ['lab']);
      assert.deepEqual({ ...f.active }, { bundleId, bundleName: 'tabular-demo', model: 'tabular-demo', version: 1 });
      assert.equal(f.desired?.deploymentId, deps[0].id);
      assert.equal(f.updateState, 'active');
    }
    assert.deepEqual(fleet.find((x) => x.id !== agents[0].id && x.id !== agents[1].id)?.active, null);
    await assertLabelled(page, 'cohorts');
    await shoot(page, 'cohorts');
    await open(page, '/', 'Fleet');
    await page.getByText('tabular-demo@1').first().waitFor();
    await shoot(page, 'fleet');
  });

  test('drift: the heatmap and the latest window show the drift the API computes (f3 shifted on the devices)', async () => {
    let seed = 10;
    for (const a of agents) {
      for (let i = 0; i < 3; i++) {
        const rows = generateRows(200, seed++).map((r) => ({ ...r.values, f3: r.values.f3 + 18 }));
        assert.equal((await agentApi(a.port, 'POST', '/v1/predict', { features: rows })).status, 200);
      }
    }
    const drift = await waitFor(async () => {
      const d = (await cp.api('GET', '/api/v1/drift?model=tabular-demo%401&cohort=lab&window=300s')).body;
      return d.rows >= 1200 ? d : null;
    }, 'the devices\' windows on the server', 30_000);
    const f3 = drift.features.find((f: { feature: string }) => f.feature === 'f3');
    assert.equal(f3.verdict, 'drifted');
    await open(page, '/drift', 'Drift');
    await page.getByLabel('Model version (name@N)').fill('tabular-demo@1');
    await page.getByLabel('Model version (name@N)').press('Enter');
    await page.getByRole('combobox', { name: /^Cohort\b/ }).selectOption('lab');
    await page.getByRole('button', { name: '1 h' }).click();
    const latest = page.getByRole('region', { name: /Latest window per feature/ });
    for (const f of drift.features as Array<{ feature: string; verdict: string }>) {
      await latest.getByRole('row').filter({ has: page.getByRole('cell', { name: f.feature, exact: true }) }).getByText(f.verdict.replace('_', ' '), { exact: true }).last().waitFor();
    }
    // The heatmap's last column marks f3 past its threshold.
    const f3Row = page.locator('table.heatmap tbody tr').filter({ has: page.getByRole('button', { name: 'f3', exact: true }) });
    assert.match((await f3Row.locator('td').last().getAttribute('title')) ?? '', /drifted/);
    await assertLabelled(page, 'drift');
    await shoot(page, 'drift');
    await open(page, '/', 'Fleet');
    await page.getByText('tabular-demo@1').first().waitFor();
    await shoot(page, 'fleet');
  });

  test('rollouts: start one from the UI and watch it finish', async () => {
    await open(page, '/rollouts', 'Rollouts');
    await page.getByRole('combobox', { name: /^Bundle\b/ }).selectOption(bundle2Id);
    await page.getByRole('combobox', { name: /^Cohort\b/ }).selectOption('lab');
    await page.getByLabel('Stages (fractions)').fill('0.5, 1');
    await page.getByLabel('Bake time (s)').fill('1');
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 7));
    await page.getByRole('button', { name: 'Start rollout' }).click();
    const card = page.locator('article[data-rollout]').first();
    await card.waitFor();
    await card.locator('.badge', { hasText: 'succeeded' }).waitFor({ timeout: 90_000 });
    assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 7, 'the page was not reloaded');
    const id = await card.getAttribute('data-rollout');
    assert.equal((await cp.api('GET', `/api/v1/rollouts/${id}`)).body.status, 'succeeded');
    await waitFor(async () => {
      const ds = await Promise.all(agents.map(async (a) => (await cp.api('GET', `/api/v1/devices/${a.id}`)).body));
      return ds.every((d) => d.updateState === 'active' && d.reported?.active?.bundleId === bundle2Id);
    }, 'both agents active on v2', 30_000);
  });

  test('rollouts, models, audit log and API tokens show what the API has', async () => {
    await open(page, '/rollouts', 'Rollouts');
    const rollouts = (await cp.api('GET', '/api/v1/rollouts')).body.rollouts as Array<{ id: string; status: string }>;
    for (const r of rollouts) await page.locator(`article[data-rollout="${r.id}"]`).getByText(r.status, { exact: true }).waitFor();
    await assertLabelled(page, 'rollouts');
    await shoot(page, 'rollouts');

    await open(page, '/models', 'Models');
    const versions = (await cp.api('GET', '/api/v1/models/tabular-demo/versions')).body.versions as Array<{ ref: string; sha256: string }>;
    for (const v of versions) await page.getByRole('button', { name: `Version ${v.ref}` }).waitFor();
    await page.getByText(versions[0].sha256).waitFor();
    await assertLabelled(page, 'models');
    await shoot(page, 'models');

    await open(page, '/retraining', 'Retraining');
    const jobs = (await cp.api('GET', '/api/v1/jobs')).body.jobs as Array<{ id: string }>;
    if (jobs.length) for (const j of jobs) await page.getByRole('button', { name: j.id }).waitFor();
    else await page.getByText('No training jobs yet.').waitFor();
    await assertLabelled(page, 'retraining');
    await shoot(page, 'retraining');

    await open(page, '/audit', 'Audit log');
    const entries = (await cp.api('GET', '/api/v1/audit?limit=5')).body.entries as Array<{ action: string }>;
    for (const e of entries) await page.getByRole('cell', { name: e.action, exact: true }).first().waitFor();
    await shoot(page, 'audit');

    await open(page, '/tokens', 'API tokens');
    const tokens = (await cp.api('GET', '/api/v1/tokens')).body.tokens as Array<{ id: string }>;
    for (const t of tokens) await page.getByText(t.id, { exact: true }).waitFor();
    await assertLabelled(page, 'tokens');
    await shoot(page, 'tokens');
  });

  test('keyboard: Tab reaches the skip link and the navigation; Enter follows it', async () => {
    await open(page, '/', 'Fleet');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent?.trim()), 'Skip to content');
    await page.keyboard.press('Tab'); // brand
    await page.keyboard.press('Tab'); // Fleet
    await page.keyboard.press('Tab'); // Cohorts & deployments
    assert.equal(await page.evaluate(() => document.activeElement?.textContent?.trim()), 'Cohorts & deployments');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Cohorts & deployments' }).waitFor();
  });

  test('a viewer sees no write actions, and a forbidden page says the role cannot do this', async () => {
    assert.deepEqual((await cp.api('GET', '/api/v1/me', { token: viewerToken })).body, { tokenId: (await cp.api('GET', '/api/v1/tokens')).body.tokens.find((t: { name: string }) => t.name === 'auditor').id, name: 'auditor', role: 'viewer' });
    assert.equal((await cp.api('GET', '/api/v1/me', { token: 'nope' })).status, 401);
    const viewer = await context.newPage(); // its own sessionStorage
    await signIn(viewer, cp.url, viewerToken);
    assert.equal(await viewer.getByRole('checkbox').count(), 0, 'no selection for bulk actions');
    assert.equal(await viewer.getByRole('link', { name: 'Audit log' }).count(), 0);
    await open(viewer, '/cohorts', 'Cohorts & deployments');
    assert.equal(await viewer.getByRole('button', { name: 'Deploy', exact: true }).count(), 0);
    await open(viewer, '/audit', 'Audit log');
    const alert = viewer.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.innerText(), /Your role cannot do this/);
    assert.match(await alert.innerText(), /role "viewer"/);
    await shoot(viewer, 'viewer-forbidden');
    await viewer.close();
  });

  test('agent settings: set a cohort\'s telemetry interval from the UI; the API stores it', async () => {
    await open(page, '/settings', 'Agent settings');
    await page.getByText('Every device runs the defaults.').waitFor();
    await page.getByLabel('Cohort name').fill('berlin');
    await page.getByLabel('Telemetry interval (s, 1–3600)').fill('30');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved for cohort berlin' }).waitFor();
    const stored = (await cp.api('GET', '/api/v1/agent-settings/cohort/berlin')).body;
    assert.equal(stored.settings.telemetryIntervalS, 30);
    await page.getByRole('cell', { name: '30 s', exact: true }).waitFor();
    await assertLabelled(page, 'settings');
    await shoot(page, 'settings');
  });

  test('screenshots for the README (FLOTILLA_DOCS_SCREENSHOTS=1)', async () => {
    if (process.env.FLOTILLA_DOCS_SCREENSHOTS !== '1') return;
    await mkdir(path.join(REPO, 'docs', 'screenshots'), { recursive: true });
    for (const name of ['fleet', 'drift']) await copyFile(path.join(ARTIFACTS, `${name}-1280.png`), path.join(REPO, 'docs', 'screenshots', `${name}.png`));
  });
});
