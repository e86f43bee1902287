import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { canonicalize } from '../../firmware-bundles/canonical-json.ts';
import { loadSigningKeys, signEnvelope } from '../../firmware-bundles/envelope.ts';
import { createKeyList } from '../../firmware-bundles/key-list.ts';
import { generateKeyPair } from '../../firmware-bundles/keys.ts';
import { createManifest, verifyManifest, type DeploymentManifest } from '../../firmware-bundles/manifest.ts';
import { manifestStamp } from './manifest-stamp.ts';
import { signAll } from './sign-manifests.ts';

const expiresAt = new Date(Date.now() + 86400e3);
const files = [
  { path: 'model.onnx', sha256: 'a'.repeat(64), size: 1234 },
  { path: 'bundle.json', sha256: 'b'.repeat(64), size: 56 },
];
const base = (o: Partial<Parameters<typeof createManifest>[0]> = {}) =>
  createManifest({ deviceId: 'dev_template0', bundle: { id: 'bnd_1', name: 'fan', model: { name: 'fan', version: 3 } }, files, counter: 1, keylistVersion: 2, expiresAt, ...o });

const templates: Array<[string, DeploymentManifest]> = [
  ['plain', base()],
  ['cohort with escapes and non-ASCII', base({ cohort: 'ring "é" \\ ☃', agentConfig: { telemetryIntervalS: 7, statsWindowS: 30 } })],
  [
    'shadow candidate',
    base({ cohort: 'c', shadow: { rolloutId: 'ro_1', share: 0.25, windowS: 600, bundle: { id: 'bnd_2', name: 'fan', model: { name: 'fan', version: 4 } }, files, minAgentVersion: '0.1.0' } }),
  ],
];
const devicesAndCounters: Array<[string, number]> = [
  ['dev_abcdefgh', 1],
  ['dev_0123456789abcdef0123456789abcdef', 9_007_199_254_740_991],
  ['dev_zz99zz99', 42],
];

describe('manifest stamp: per-device texts from one template', () => {
  for (const [name, template] of templates) {
    test(`${name}: canonical and JSON texts are those of the whole device manifest`, () => {
      const stamp = manifestStamp(template);
      for (const [deviceId, counter] of devicesAndCounters) {
        const whole = { ...template, deviceId, counter };
        const s = stamp(deviceId, counter);
        assert.equal(s.canonical, canonicalize(whole));
        assert.equal(s.json, JSON.stringify(whole));
      }
    });
  }

  test('a template that holds a marker elsewhere falls back to serializing each manifest whole', () => {
    // Not a manifest createManifest would make (control characters): only the fallback's correctness is at stake.
    const odd = { ...base(), cohort: '\u0001flotilla-device-id\u0001' } as DeploymentManifest;
    const s = manifestStamp(odd)('dev_abcdefgh', 5);
    assert.equal(s.canonical, canonicalize({ ...odd, deviceId: 'dev_abcdefgh', counter: 5 }));
    assert.equal(s.json, JSON.stringify({ ...odd, deviceId: 'dev_abcdefgh', counter: 5 }));
  });

  for (const n of [3, 200]) {
    test(`${n} manifests signed (${n < 32 ? 'on this thread' : 'by the signer thread'}): each envelope text is JSON.stringify(signEnvelope(...)), and it verifies`, async () => {
      const root = generateKeyPair();
      const [a, b] = [generateKeyPair(), generateKeyPair()];
      const keys = loadSigningKeys([a, b]);
      const template = templates[1][1];
      const stamp = manifestStamp(template);
      const keylist = createKeyList({ version: 2, root, keys: [a, b], threshold: 2, expiresAt });
      const devices = Array.from({ length: n }, (_, i) => devicesAndCounters[i % devicesAndCounters.length]);
      const texts = await signAll(n, (i) => stamp(...devices[i]), keys, 64);
      texts.forEach((text, i) => {
        const [deviceId, counter] = devices[i];
        // Ed25519 is deterministic: the same bytes signed by the same keys give the same signatures.
        assert.equal(text, JSON.stringify(signEnvelope({ ...template, deviceId, counter }, keys)));
        const verdict = verifyManifest(JSON.parse(text), { keylist, deviceId, cohort: template.cohort, activeCounter: counter - 1, agentVersion: '9.9.9', now: new Date() });
        assert.ok(verdict.ok, JSON.stringify(verdict));
      });
    });
  }

  test('signAll keeps the order of the devices across chunks', async () => {
    const keys = loadSigningKeys([generateKeyPair()]);
    const stamp = manifestStamp(templates[0][1]);
    const ids = Array.from({ length: 300 }, (_, i) => `dev_order${String(i).padStart(5, '0')}`);
    const texts = await signAll(ids.length, (i) => stamp(ids[i], i + 1), keys, 7);
    assert.equal(texts.length, ids.length);
    texts.forEach((t, i) => {
      const signed = JSON.parse(t).signed as DeploymentManifest;
      assert.equal(signed.deviceId, ids[i]);
      assert.equal(signed.counter, i + 1);
    });
  });
});
