// The setup the rollout tests share: a trusted key list, versions of the tabular demo model with a
// bundle each, fake devices (real MQTT) enrolled with labels, and a cohort deployment they all run;
// startRolloutLab puts them together on a plane of its own.
import assert from 'node:assert/strict';
import path from 'node:path';
import { waitFor } from '../../agent/testing/harness.ts';
import { createKeyList, signKeyList } from '../../firmware-bundles/key-list.ts';
import { generateKeyPair } from '../../firmware-bundles/keys.ts';
import { loadBundleDefinition } from '../../firmware-bundles/load-definition.ts';
import type { ServerConfig } from '../../server/env.ts';
import { startControlPlane, type TestPlane } from './control-plane.ts';
import { FakeDevice } from './fake-device.ts';
import { gemmModel } from './models.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', '..', 'firmware-bundles', 'tabular-demo', 'bundle.json');

/** A root-signed key list with one server-held release key, so the plane can sign manifests. */
export async function trustReleaseKey(cp: TestPlane): Promise<void> {
  const root = generateKeyPair();
  const release = (await cp.api('POST', '/api/v1/keys/release')).body;
  const list = createKeyList({ version: 1, root, keys: [release], threshold: 1, expiresAt: new Date(Date.now() + 86400e3) });
  assert.equal((await cp.api('PUT', '/api/v1/keys/keylist', { json: signKeyList(list, root.privateKeyPem) })).status, 200);
}

/** Pushes versions 1..n of `tab` (different weights); `beforeBundles` runs between the pushes and the builds. */
export async function tabVersions(cp: TestPlane, n: number, beforeBundles?: () => Promise<void>): Promise<string[]> {
  for (let v = 1; v <= n; v++) {
    assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel({ seed: v }) as unknown as BodyInit })).status, 201);
  }
  await beforeBundles?.();
  const { definition, labels } = await loadBundleDefinition(BUNDLE_DEF);
  const bundles: string[] = [];
  for (let v = 1; v <= n; v++) {
    const b = await cp.api('POST', '/api/v1/bundles', { json: { model: `tab@${v}`, definition, labels } });
    assert.equal(b.status, 201, JSON.stringify(b.body));
    bundles.push(b.body.id);
  }
  return bundles;
}

/** Enrolls `n` fake devices with these labels. */
export async function enrollFakes(cp: TestPlane, labels: Record<string, string>, n: number): Promise<FakeDevice[]> {
  const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: { labels } })).body.token;
  const out: FakeDevice[] = [];
  for (let i = 0; i < n; i++) out.push(await FakeDevice.enroll(cp, token));
  return out;
}

/** Deploys a bundle to a cohort and waits until every given device runs it. */
export async function deployTo(cp: TestPlane, bundle: string, cohort: string, devices: FakeDevice[]): Promise<void> {
  assert.equal((await cp.api('POST', '/api/v1/deployments', { json: { bundle, cohort } })).status, 201);
  await waitFor(async () => devices.every((d) => d.active === bundle), `every device on ${bundle}`, 30_000, 50);
}

export interface RolloutLab {
  cp: TestPlane;
  /** The bundles of tab versions 1..n, in order. */
  bundles: string[];
  /** Fake devices enrolled with site=lab, all running bundles[0]. */
  devices: FakeDevice[];
  stop(): Promise<void>;
}

/**
 * A plane whose scheduler ticks every 100 ms (drift evaluation off), a trusted release key, `versions`
 * versions of tab with a bundle each, and a cohort (selector site=lab) of `devices` fake devices that
 * all run the first bundle. `beforeBundles` runs between the pushes and the builds.
 */
export async function startRolloutLab(o: { versions: number; devices: number; cohort: string; plane?: Partial<ServerConfig>; beforeBundles?: (cp: TestPlane) => Promise<void> }): Promise<RolloutLab> {
  const cp = await startControlPlane({ schedulerTickMs: 100, driftCron: 'off', ...o.plane });
  const devices: FakeDevice[] = [];
  const stop = async () => {
    await Promise.all(devices.map((d) => d.close()));
    await cp.stop();
  };
  try {
    await trustReleaseKey(cp);
    const bundles = await tabVersions(cp, o.versions, async () => await o.beforeBundles?.(cp));
    assert.equal((await cp.api('POST', '/api/v1/cohorts', { json: { name: o.cohort, selector: 'site=lab' } })).status, 201);
    devices.push(...(await enrollFakes(cp, { site: 'lab' }, o.devices)));
    await deployTo(cp, bundles[0], o.cohort, devices);
    return { cp, bundles, devices, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
