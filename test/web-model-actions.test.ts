// Model and device actions in the console, in Chromium against a real control plane
// (test/helpers/console-fixture.ts): build a bundle from a definition; upload a version with its progress
// bar; optimize with the CLI's options and read the report; the device page's errors-by-reason chart
// over 15 min / 1 h / 24 h / 7 d. Each action's effect is read back from the API, not from the page.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page, Route } from 'playwright-core';
import { waitFor } from '../agent/testing/harness.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { summaryRows } from '../web/src/pages/optimize-summary.ts';
import { ARTIFACTS, assertLabelled, REPO } from './helpers/browser.ts';
import { startConsoleFixture, type ConsoleFixture } from './helpers/console-fixture.ts';
import type { TestPlane } from './helpers/control-plane.ts';
import { telemetryMessage } from './helpers/device-stats.ts';
import { gemmModel } from './helpers/models.ts';

const MINUTE = 60_000;

describe('console model and device actions in Chromium', () => {
  let fx: ConsoleFixture;
  let cp: TestPlane;
  let page: Page;
  let browser: ConsoleFixture['browser'];
  let lab: ConsoleFixture['lab'];
  const ok = (method: string, p: string, json?: unknown) => fx.ok(method, p, json);
  const open = (pathname: string, heading: string) => fx.open(pathname, heading);

  before(async () => {
    fx = await startConsoleFixture();
    ({ cp, page, browser, lab } = fx);
  });
  after(() => fx?.stop());

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
