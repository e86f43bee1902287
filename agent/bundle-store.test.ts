// BundleStore on a real directory: install → pointers, start-up re-verification (signatures as of
// when they were verified, then file hashes), revert, prune.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BundleError, BundleStore, bundleName } from './bundle-store.ts';
import { manifestDigest } from './reconciler.ts';
import { TestTrust } from './testing/harness.ts';
import { createHash } from 'node:crypto';

const DEVICE = 'dev_abcdefgh1';
const bundleJson = Buffer.from(JSON.stringify({ name: 'x', preprocess: { type: 'tabular', input: 'features', features: [{ name: 'a' }] } }));
const hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('BundleStore', () => {
  let dir: string;
  let store: BundleStore;
  const trust = new TestTrust();
  const ctx = { pinnedRoot: { keyid: trust.root.keyid, publicKey: trust.root.publicKey }, deviceId: DEVICE, agentVersion: '0.1.0' };

  async function stage(counter: number, model: Buffer, o: { expiresAt?: Date; now?: Date } = {}) {
    const env = trust.manifest(
      DEVICE,
      [
        { path: 'model.onnx', sha256: hex(model), size: model.length },
        { path: 'bundle.json', sha256: hex(bundleJson), size: bundleJson.length },
      ],
      { counter, ...o },
    );
    const name = bundleName(counter, manifestDigest(env.signed)!);
    const s = await store.stagingDir(name);
    await writeFile(path.join(s, 'model.onnx'), model);
    await writeFile(path.join(s, 'bundle.json'), bundleJson);
    return { env, name };
  }

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flotilla-bs-'));
    store = new BundleStore(dir);
    await store.init();
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('install moves current to previous; both verify', async () => {
    const a = await stage(1, Buffer.from('model A'));
    await store.install(a.name, { manifest: a.env, keylist: trust.keylistEnvelope }, { verifiedAt: new Date().toISOString() });
    assert.equal(await store.pointer('current'), a.name);
    assert.equal(await store.pointer('previous'), null);
    const b = await stage(2, Buffer.from('model B'));
    await store.install(b.name, { manifest: b.env, keylist: trust.keylistEnvelope }, { verifiedAt: new Date().toISOString() });
    assert.equal(await readlink(path.join(dir, 'current')), path.join('bundles', b.name));
    assert.equal(await store.pointer('previous'), a.name);
    const vb = await store.verifyInstalled(b.name, ctx);
    assert.equal(vb.manifest.counter, 2);
    assert.equal((await store.verifyInstalled(a.name, ctx)).manifest.counter, 1);
  });

  test('a manifest that expired after it was verified still verifies at start (no bricking)', async () => {
    const c = await stage(3, Buffer.from('model C'), { now: new Date(Date.now() - 10_000), expiresAt: new Date(Date.now() + 200) });
    await store.install(c.name, { manifest: c.env, keylist: trust.keylistEnvelope }, { verifiedAt: new Date().toISOString() });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await store.verifyInstalled(c.name, ctx)).manifest.counter, 3);
  });

  test('tampering on disk is caught: model bytes, manifest, key list, another root', async () => {
    const name = (await store.pointer('current'))!;
    const model = path.join(dir, 'bundles', name, 'model.onnx');
    const original = await readFile(model);
    await writeFile(model, Buffer.from('model X')); // same size, other bytes
    await assert.rejects(store.verifyInstalled(name, ctx), (e: unknown) => e instanceof BundleError && e.code === 'HASH_MISMATCH');
    await writeFile(model, Buffer.concat([original, Buffer.from('!')]));
    await assert.rejects(store.verifyInstalled(name, ctx), (e: unknown) => (e as BundleError).code === 'SIZE_MISMATCH');
    await writeFile(model, original);

    const mf = path.join(dir, 'bundles', name, 'manifest.json');
    const env = JSON.parse(await readFile(mf, 'utf8'));
    await writeFile(mf, JSON.stringify({ ...env, signed: { ...env.signed, counter: 99 } }));
    await assert.rejects(store.verifyInstalled(name, ctx), (e: unknown) => (e as BundleError).code === 'BAD_SIGNATURE');
    await writeFile(mf, JSON.stringify(env));

    const other = new TestTrust();
    await assert.rejects(store.verifyInstalled(name, { ...ctx, pinnedRoot: { keyid: other.root.keyid, publicKey: other.root.publicKey } }), (e: unknown) => (e as BundleError).code === 'UNKNOWN_ROOT');
    await assert.rejects(store.verifyInstalled(name, { ...ctx, deviceId: 'dev_otherdevice' }), (e: unknown) => (e as BundleError).code === 'WRONG_DEVICE');
    assert.equal((await store.verifyInstalled(name, ctx)).manifest.counter, 3);
  });

  test('revert points current at previous and forgets previous; prune keeps only the two pointers', async () => {
    const before = await store.pointer('previous');
    assert.equal(await store.revert(), before);
    assert.equal(await store.pointer('current'), before);
    assert.equal(await store.pointer('previous'), null);
    await assert.rejects(store.revert(), (e: unknown) => (e as BundleError).code === 'NO_PREVIOUS');
    const removed = await store.prune();
    assert.equal(removed.length, 2);
    assert.deepEqual(await (await import('node:fs/promises')).readdir(path.join(dir, 'bundles')), [before]);
  });
});
