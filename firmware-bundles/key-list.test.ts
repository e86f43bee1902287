import assert from 'node:assert/strict';
import { test } from 'node:test';
import { signEnvelope } from './envelope.ts';
import { KeyError, generateKeyPair } from './keys.ts';
import { createKeyList, rotateKeyList, signKeyList, verifyKeyList } from './key-list.ts';
import { NOW, days, makeTrust } from './testing/fixtures.ts';

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

test('accepts a list signed by the pinned root, also after a JSON round trip with reordered keys', () => {
  const f = makeTrust();
  const wire = JSON.parse(JSON.stringify({ signatures: f.keylistEnvelope.signatures, signed: f.keylistEnvelope.signed }, null, 2));
  const r = verifyKeyList(wire, { pinnedRootKeys: [f.root], now: NOW });
  assert.ok(r.ok, r.ok ? '' : r.message);
  assert.deepEqual(r.keylist, f.keylist);
});

test('MALFORMED: broken envelope, keyid not matching its key, unreachable threshold', () => {
  const f = makeTrust();
  const opts = { pinnedRootKeys: [f.root], now: NOW };
  for (const bad of [null, 'x', {}, { signed: f.keylist }, { signed: [], signatures: [] }]) {
    const r = verifyKeyList(bad, opts);
    assert.equal(r.ok ? 'ok' : r.reason, 'MALFORMED');
  }
  const wrongId = clone(f.keylist);
  wrongId.keys[0].keyid = f.outsider.keyid; // claims another key's id for A's public key
  const r1 = verifyKeyList(signEnvelope(wrongId, [f.root]), opts);
  assert.equal(r1.ok ? 'ok' : r1.reason, 'MALFORMED');
  const threshold = { ...clone(f.keylist), threshold: 2 };
  const r2 = verifyKeyList(signEnvelope(threshold, [f.root]), opts);
  assert.ok(!r2.ok && r2.reason === 'MALFORMED' && /threshold/.test(r2.message));
});

test('UNKNOWN_ROOT: a list made by another root, or carrying no signature by the pinned root', () => {
  const f = makeTrust();
  const rogueRoot = generateKeyPair();
  const rogue = createKeyList({ version: 9, root: rogueRoot, keys: [f.outsider], expiresAt: days(30), now: NOW });
  const r1 = verifyKeyList(signKeyList(rogue, rogueRoot.privateKeyPem), { pinnedRootKeys: [f.root], now: NOW });
  assert.equal(r1.ok ? 'ok' : r1.reason, 'UNKNOWN_ROOT');
  // Names the pinned root but is signed by a release key.
  const r2 = verifyKeyList(signEnvelope(f.keylist, [f.releaseA]), { pinnedRootKeys: [f.root], now: NOW });
  assert.equal(r2.ok ? 'ok' : r2.reason, 'UNKNOWN_ROOT');
});

test('BAD_ROOT_SIGNATURE: a key slipped into a signed list', () => {
  const f = makeTrust();
  const env = clone(f.keylistEnvelope);
  env.signed.keys.push({ keyid: f.outsider.keyid, publicKey: f.outsider.publicKey, role: 'release', addedAt: NOW.toISOString() });
  const r = verifyKeyList(env, { pinnedRootKeys: [f.root], now: NOW });
  assert.equal(r.ok ? 'ok' : r.reason, 'BAD_ROOT_SIGNATURE');
  const sigFlipped = clone(f.keylistEnvelope);
  const raw = Buffer.from(sigFlipped.signatures[0].sig, 'base64');
  raw[0] ^= 1;
  sigFlipped.signatures[0].sig = raw.toString('base64');
  const r2 = verifyKeyList(sigFlipped, { pinnedRootKeys: [f.root], now: NOW });
  assert.equal(r2.ok ? 'ok' : r2.reason, 'BAD_ROOT_SIGNATURE');
});

test('KEYLIST_EXPIRED at and after expiresAt', () => {
  const f = makeTrust();
  const expiry = new Date(f.keylist.expiresAt);
  assert.ok(verifyKeyList(f.keylistEnvelope, { pinnedRootKeys: [f.root], now: new Date(expiry.getTime() - 1) }).ok);
  for (const now of [expiry, days(1, expiry)]) {
    const r = verifyKeyList(f.keylistEnvelope, { pinnedRootKeys: [f.root], now });
    assert.equal(r.ok ? 'ok' : r.reason, 'KEYLIST_EXPIRED');
  }
});

test('KEYLIST_ROLLBACK: older version, or same version with other content; same content is accepted', () => {
  const f = makeTrust();
  const v2 = rotateKeyList(f.keylist, { add: [f.releaseB], expiresAt: days(365), now: NOW });
  const pinned = { pinnedRootKeys: [f.root], now: NOW };
  const r1 = verifyKeyList(f.keylistEnvelope, { ...pinned, currentVersion: 2 });
  assert.equal(r1.ok ? 'ok' : r1.reason, 'KEYLIST_ROLLBACK');
  const r2 = verifyKeyList(f.keylistEnvelope, { ...pinned, current: v2 });
  assert.equal(r2.ok ? 'ok' : r2.reason, 'KEYLIST_ROLLBACK');
  // Same version number, different keys: a second "v1" must not replace the trusted v1.
  const otherV1 = createKeyList({ version: 1, root: f.root, keys: [f.outsider], expiresAt: days(365), now: NOW });
  const r3 = verifyKeyList(signKeyList(otherV1, f.root.privateKeyPem), { ...pinned, current: f.keylist });
  assert.ok(!r3.ok && r3.reason === 'KEYLIST_ROLLBACK' && /same version/.test(r3.message));
  assert.ok(verifyKeyList(f.keylistEnvelope, { ...pinned, current: f.keylist }).ok, 'redelivered current list');
  assert.ok(verifyKeyList(signKeyList(v2, f.root.privateKeyPem), { ...pinned, current: f.keylist }).ok, 'newer list');
});

test('rotation keeps retained keys, bumps the version, and refuses to retire unknown keys', () => {
  const f = makeTrust();
  const v2 = rotateKeyList(f.keylist, { add: [f.releaseB], retire: [f.releaseA.keyid], expiresAt: days(400), now: NOW });
  assert.equal(v2.version, 2);
  assert.deepEqual(v2.keys.map((k) => k.keyid), [f.releaseB.keyid]);
  const v3 = rotateKeyList(v2, { add: [f.releaseA], expiresAt: days(400), now: days(1) });
  assert.deepEqual(v3.keys.map((k) => [k.keyid, k.addedAt]), [[f.releaseB.keyid, NOW.toISOString()], [f.releaseA.keyid, days(1).toISOString()]]);
  assert.throws(() => rotateKeyList(v2, { retire: [f.outsider.keyid], expiresAt: days(400) }), KeyError);
});

test('signKeyList refuses a private key that is not the list root', () => {
  const f = makeTrust();
  assert.throws(() => signKeyList(f.keylist, f.releaseA.privateKeyPem), (e: unknown) => e instanceof KeyError && e.code === 'KEY_MISMATCH');
});

test('a list verified before is still checked for pins, tampering, rollback and expiry (the root-signature memo)', () => {
  const f = makeTrust();
  const opts = { pinnedRootKeys: [f.root], now: NOW };
  assert.ok(verifyKeyList(f.keylistEnvelope, opts).ok);
  const again = verifyKeyList(clone(f.keylistEnvelope), opts);
  assert.ok(again.ok);
  assert.deepEqual(again.keylist, f.keylist);
  // Another pin: the remembered verification was for other pins.
  const other = generateKeyPair();
  const r1 = verifyKeyList(f.keylistEnvelope, { ...opts, pinnedRootKeys: [{ keyid: other.keyid, publicKey: other.publicKey }] });
  assert.equal(r1.ok ? 'ok' : r1.reason, 'UNKNOWN_ROOT');
  // The same signature over altered content, or an altered signature over the same content.
  const slipped = clone(f.keylistEnvelope);
  slipped.signed.keys.push({ keyid: f.outsider.keyid, publicKey: f.outsider.publicKey, role: 'release', addedAt: NOW.toISOString() });
  const r2 = verifyKeyList(slipped, opts);
  assert.equal(r2.ok ? 'ok' : r2.reason, 'BAD_ROOT_SIGNATURE');
  const flipped = clone(f.keylistEnvelope);
  const raw = Buffer.from(flipped.signatures[0].sig, 'base64');
  raw[5] ^= 1;
  flipped.signatures[0].sig = raw.toString('base64');
  const r3 = verifyKeyList(flipped, opts);
  assert.equal(r3.ok ? 'ok' : r3.reason, 'BAD_ROOT_SIGNATURE');
  // What depends on the moment and on what the caller trusts now is checked on every call.
  const r4 = verifyKeyList(f.keylistEnvelope, { ...opts, currentVersion: 2 });
  assert.equal(r4.ok ? 'ok' : r4.reason, 'KEYLIST_ROLLBACK');
  const r5 = verifyKeyList(f.keylistEnvelope, { ...opts, now: new Date(f.keylist.expiresAt) });
  assert.equal(r5.ok ? 'ok' : r5.reason, 'KEYLIST_EXPIRED');
  assert.ok(verifyKeyList(f.keylistEnvelope, opts).ok);
});
