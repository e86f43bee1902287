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
  test('each envelope is validated once, strictly: a malformed signature entry drops the whole message', () => {
    const m = trust.manifest(DEVICE, files, { counter: 1 });
    const [sig] = m.signatures;
    for (const signatures of [[{ keyid: 'not-a-key-id', sig: sig.sig }], [{ keyid: sig.keyid, sig: 'A'.repeat(129) }], [{ keyid: sig.keyid, sig: '' }], Array.from({ length: 17 }, () => sig)]) {
      assert.equal(checkDesired(msg({ ...m, signatures }), ctx()).kind, 'drop', JSON.stringify(signatures[0]));
    }
    const kl = trust.keylistEnvelope;
    assert.equal(checkDesired(msg(m, { ...kl, signatures: [{ keyid: kl.signatures[0].keyid.toUpperCase(), sig: kl.signatures[0].sig }] }), ctx()).kind, 'drop');
    assert.equal(checkDesired(msg(m), ctx()).kind, 'accept', 'the same message, well-formed');
  });

  test('forged, foreign, stale, expired and misaddressed manifests are still refused', () => {
    const m = trust.manifest(DEVICE, files, { counter: 5 });
    const forged = { ...m, signed: { ...m.signed, bundle: { ...m.signed.bundle, id: 'bnd_evil' } } };
    const code = (v: ReturnType<typeof checkDesired>) => (v.kind === 'reject' ? v.code : v.kind);
    assert.equal(code(checkDesired(msg(forged), ctx())), 'BAD_SIGNATURE');
    assert.equal(code(checkDesired(msg(trust.manifest(DEVICE, files, { counter: 5, signer: trust.outsider })), ctx())), 'UNKNOWN_KEY');
    assert.equal(code(checkDesired(msg(m), ctx({ floor: 5 }))), 'ROLLBACK');
    const expired = trust.manifest(DEVICE, files, { counter: 6, now: new Date(Date.now() - 7200e3), expiresAt: new Date(Date.now() - 3600e3) });
    assert.equal(code(checkDesired(msg(expired), ctx())), 'EXPIRED');
    assert.equal(code(checkDesired(msg(trust.manifest('dev_other0001', files, { counter: 6 })), ctx())), 'WRONG_DEVICE');
  });

  test('a key list verified before is trusted again only with the same content and the same signatures', () => {
    const t = new TestTrust();
    const pinned = { pinnedRoot: { keyid: t.root.keyid, publicKey: t.root.publicKey } };
    const m = t.manifest(DEVICE, files, { counter: 1 });
    const kl = t.keylistEnvelope;
    assert.equal(checkDesired(msg(m, kl), ctx(pinned)).kind, 'accept'); // verified, and remembered
    const code = (v: ReturnType<typeof checkDesired>) => (v.kind === 'reject' ? v.code : v.kind);
    // The remembered list's signature over other content: a longer life, another release key.
    const later = { ...kl, signed: { ...kl.signed, expiresAt: new Date(Date.now() + 3650 * 86_400e3).toISOString() } };
    assert.equal(code(checkDesired(msg(m, later), ctx(pinned))), 'BAD_ROOT_SIGNATURE');
    const extraKey = { ...kl, signed: { ...kl.signed, keys: [...kl.signed.keys, { ...kl.signed.keys[0], keyid: t.outsider.keyid, publicKey: t.outsider.publicKey }] } };
    assert.equal(code(checkDesired(msg(t.manifest(DEVICE, files, { counter: 1, signer: t.outsider }), extraKey), ctx(pinned))), 'BAD_ROOT_SIGNATURE');
    // The remembered content with a signature that is not the root's.
    const resigned = { ...kl, signatures: [{ keyid: kl.signatures[0].keyid, sig: Buffer.alloc(64, 7).toString('base64') }] };
    assert.equal(code(checkDesired(msg(m, resigned), ctx(pinned))), 'BAD_ROOT_SIGNATURE');
    // The same content with its keys in another order is checked on its own, and verifies.
    const reordered = { signatures: kl.signatures, signed: Object.fromEntries(Object.entries(kl.signed).reverse()) };
    assert.equal(checkDesired(msg(m, reordered), ctx(pinned)).kind, 'accept');
  });
});
