// Fleet and rollout actions in the console, in Chromium against a real control plane
// (test/helpers/console-fixture.ts): approve and revoke devices from the fleet table; pause, resume,
// abort and roll back rollouts; start a rollout with a shadow stage and the newer gates; a keyboard-only
// pass through a form and a table action; the sign-in page at 1280 and 820 px. Each action's effect is
// read back from the API, not from the page.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { waitFor } from '../agent/testing/harness.ts';
import { ARTIFACTS, assertLabelled } from './helpers/browser.ts';
import { startConsoleFixture, type ConsoleFixture } from './helpers/console-fixture.ts';
import type { TestPlane } from './helpers/control-plane.ts';

describe('console fleet and rollout actions in Chromium', () => {
  let fx: ConsoleFixture;
  let cp: TestPlane;
  let page: Page;
  let browser: ConsoleFixture['browser'];
  let bundle1: string;
  let bundle2: string;
  let lab: ConsoleFixture['lab'];
  const ok = (method: string, p: string, json?: unknown) => fx.ok(method, p, json);
  const open = (pathname: string, heading: string) => fx.open(pathname, heading);
  const tabTo = (name: string) => fx.tabTo(name);

  before(async () => {
    fx = await startConsoleFixture();
    ({ cp, page, browser, bundle1, bundle2, lab } = fx);
  });
  after(() => fx?.stop());


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
});
