import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkDesired, manifestDigest, type DesiredContext } from './desired-check.ts';
import { TestTrust } from './testing/harness.ts';

const DEVICE = 'dev_abcdefgh1';
const files = [
  { path: 'model.onnx', sha256: 'a'.repeat(64), size: 10 },
  { path: 'bundle.json', sha256: 'b'.repeat(64), size: 5 },
];

describe('checkDesired', () => {
  const trust = new TestTrust();
  const ctx = (o: Partial<DesiredContext> = {}): DesiredContext => ({
    pinnedRoot: { keyid: trust.root.keyid, publicKey: trust.root.publicKey },
    deviceId: DEVICE,
    agentVersion: '0.1.0',
    storedKeylist: null,
    floor: 0,
    reinstall: null,
    known: () => false,
    now: new Date(),
    ...o,
  });
  const msg = (m: unknown, keylist: unknown = trust.keylistEnvelope) => Buffer.from(JSON.stringify({ v: 1, keylist, manifest: m }));

  test('malformed messages are dropped; no manifest means keep what runs (the key list is still kept)', () => {
    assert.equal(checkDesired(Buffer.from('{'), ctx()).kind, 'drop');
    assert.equal(checkDesired(Buffer.from('{"v":2}'), ctx()).kind, 'drop');
    const v = checkDesired(msg(null), ctx());
    assert.equal(v.kind, 'ignore');
    assert.ok(v.kind === 'ignore' && v.keylistToStore);
  });

  test('accepts a valid manifest as a job named by counter and digest', () => {
    const m = trust.manifest(DEVICE, files, { counter: 3 });
    const v = checkDesired(msg(m), ctx({ floor: 2 }));
    assert.equal(v.kind, 'accept');
    assert.ok(v.kind === 'accept' && v.job.name === `3-${manifestDigest(m.signed)!.slice(0, 16)}`);
  });

  test('an already handled manifest is ignored, not rejected again', () => {
    const m = trust.manifest(DEVICE, files, { counter: 3 });
    assert.equal(checkDesired(msg(m), ctx({ floor: 3, known: () => true })).kind, 'ignore');
    const r = checkDesired(msg(m), ctx({ floor: 3 }));
    assert.ok(r.kind === 'reject' && r.code === 'ROLLBACK' && r.counter === 3);
  });

  test('the manifest of a bundle broken on disk may be installed again despite the floor', () => {
    const m = trust.manifest(DEVICE, files, { counter: 3 });
    const d = manifestDigest(m.signed)!;
    assert.equal(checkDesired(msg(m), ctx({ floor: 3, reinstall: d, known: () => true })).kind, 'accept');
    const other = trust.manifest(DEVICE, files, { counter: 2 });
    assert.equal(checkDesired(msg(other), ctx({ floor: 3, reinstall: d })).kind, 'reject');
  });

  test('no pinned root, foreign root: rejected with the key list reason', () => {
    const m = trust.manifest(DEVICE, files, { counter: 1 });
    const a = checkDesired(msg(m), ctx({ pinnedRoot: null }));
    assert.ok(a.kind === 'reject' && a.code === 'UNKNOWN_ROOT');
    const stranger = new TestTrust();
    const b = checkDesired(msg(m), ctx({ pinnedRoot: { keyid: stranger.root.keyid, publicKey: stranger.root.publicKey } }));
    assert.ok(b.kind === 'reject' && b.code === 'UNKNOWN_ROOT');
  });

  test('an older key list is ignored in favour of the stored newer one', () => {
    const t = new TestTrust();
    const v1 = t.keylistEnvelope;
    t.rotate();
    const m = t.manifest(DEVICE, files, { counter: 1 });
    const ok = checkDesired(msg(m, v1), ctx({ pinnedRoot: { keyid: t.root.keyid, publicKey: t.root.publicKey }, storedKeylist: t.keylistEnvelope as never }));
    assert.equal(ok.kind, 'accept');
    assert.ok(ok.kind === 'accept' && !ok.keylistToStore);
  });

  test('reserved file names are refused', () => {
    const m = trust.manifest(DEVICE, [...files, { path: 'model.onnx.part', sha256: 'c'.repeat(64), size: 1 }], { counter: 1 });
    const v = checkDesired(msg(m), ctx());
    assert.ok(v.kind === 'reject' && v.code === 'INVALID_BUNDLE');
  });
});
