// One control plane and one signed-in Chromium tab for the console's operator-action tests
// (test/web-fleet-actions.test.ts, test/web-model-actions.test.ts): models tab@1 and tab@2 with a bundle
// each, cohort lab with two approved devices on real MQTT that report bundle 1 active (with the shadow
// capability, as a current agent does), and three devices at the dock waiting for approval.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { Page } from 'playwright-core';
import { waitFor } from '../../agent/testing/harness.ts';
import { createKeyList, signKeyList } from '../../firmware-bundles/key-list.ts';
import { generateKeyPair } from '../../firmware-bundles/keys.ts';
import { loadBundleDefinition } from '../../firmware-bundles/load-definition.ts';
import { deviceTopic } from '../../protocol/topics.ts';
import { ARTIFACTS, ensureConsoleBuilt, launchBrowser, REPO, requireChromium, signIn } from './browser.ts';
import { startControlPlane, type TestPlane } from './control-plane.ts';
import { gemmModel } from './models.ts';

const FACTS = { arch: 'arm64', cpus: 4, memoryBytes: 4 * 2 ** 30, os: 'linux', agentVersion: '0.1.0' };

export interface ConsoleFixture {
  cp: TestPlane;
  browser: Awaited<ReturnType<typeof launchBrowser>>;
  page: Page;
  bundle1: string;
  bundle2: string;
  lab: Array<{ id: string; name: string; client: MqttClient }>;
  /** An API call as admin that must succeed; its body. */
  ok(method: string, p: string, json?: unknown): Promise<any>;
  /** Goes to a console path and waits for its heading. */
  open(pathname: string, heading: string): Promise<void>;
  /** Presses Tab until the focused control's accessible name is `name` (at most `max` presses): keyboard only. */
  tabTo(name: string, max?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startConsoleFixture(): Promise<ConsoleFixture> {
  let cp!: TestPlane;
  let page!: Page;
  let browser!: Awaited<ReturnType<typeof launchBrowser>>;
  let bundle1: string;
  let bundle2: string;
  const lab: ConsoleFixture['lab'] = [];
  const ok = async (method: string, p: string, json?: unknown) => {
    const r = await cp.api(method, p, json === undefined ? {} : { json });
    assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const open = async (pathname: string, heading: string) => {
    await page.goto(cp.url + pathname);
    await page.getByRole('heading', { level: 1, name: heading }).waitFor();
  };
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
    await signIn(page, cp.url, cp.adminToken);
  return {
    cp,
    browser,
    page,
    bundle1,
    bundle2,
    lab,
    ok,
    open,
    tabTo,
    async stop() {
      await browser?.close();
      for (const d of lab) await d.client.endAsync().catch(() => undefined);
      await cp?.stop();
    },
  };
}
