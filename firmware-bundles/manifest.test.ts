import assert from 'node:assert/strict';
import { test } from 'node:test';
import { signEnvelope } from './envelope.ts';
import { createKeyList, rotateKeyList, signKeyList, verifyKeyList } from './key-list.ts';
import { signManifest, verifyManifest, type VerifyManifestOptions } from './manifest.ts';
import { MANIFEST_REJECT_REASONS, type ManifestRejectReason } from './reasons.ts';
import { DEVICE, NOW, days, makeTrust, manifestPayload } from './testing/fixtures.ts';

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
const f = makeTrust();
const base: VerifyManifestOptions = { keylist: f.keylist, deviceId: DEVICE, activeCounter: 9, agentVersion: '0.1.0', now: NOW };
const seen = new Set<ManifestRejectReason>();

function expectReason(envelope: unknown, reason: ManifestRejectReason, opts: Partial<VerifyManifestOptions> = {}): string {
  const r = verifyManifest(envelope, { ...base, ...opts });
  assert.equal(r.ok ? 'ok' : r.reason, reason, r.ok ? '' : r.message);
  seen.add(reason);
  return r.ok ? '' : r.message;
}

test('accepts a manifest signed by a listed release key, after a JSON round trip', () => {
  const env = signManifest(manifestPayload(), [f.releaseA]);
  const r = verifyManifest(JSON.parse(JSON.stringify(env, null, 1)), base);
  assert.ok(r.ok, r.ok ? '' : r.message);
  assert.equal(r.manifest.counter, 10);
  assert.ok(verifyManifest(env, { ...base, activeCounter: null }).ok, 'first install');
});

test('MALFORMED: wrong shapes, unsafe file paths, duplicate or missing files', () => {
  const good = manifestPayload();
  const broken = [
    { ...good, files: [{ path: '../etc/passwd', sha256: 'a'.repeat(64), size: 1 }, ...good.files] },
    { ...good, files: [{ path: 'sub/model.onnx', sha256: 'a'.repeat(64), size: 1 }, ...good.files] },
    { ...good, files: [{ path: 'a..b', sha256: 'a'.repeat(64), size: 1 }, ...good.files] },
    { ...good, files: [good.files[0]] },
    { ...good, files: [...good.files, good.files[0]] },
    { ...good, files: good.files.map((x) => ({ ...x, size: 0 })) },
    { ...good, files: good.files.map((x) => ({ ...x, sha256: 'XYZ' })) },
    { ...good, v: 2 },
    { ...good, type: 'keylist' },
    { ...good, counter: 0 },
    { ...good, minAgentVersion: 'latest' },
    { ...good, deviceId: 'device/../x' },
  ];
  // Signed correctly, so only the shape check can catch them.
  for (const payload of broken) expectReason(signEnvelope(payload, [f.releaseA]), 'MALFORMED');
  for (const env of [null, [], {}, { signed: good }, { signed: good, signatures: 'x' }]) expectReason(env, 'MALFORMED');
  const tooMany = signManifest(good, Array(17).fill(f.releaseA));
  expectReason(tooMany, 'MALFORMED');
});

test('BAD_SIGNATURE: payload changed after signing (counter, file hash, added field) or signature altered', () => {
  const env = signManifest(manifestPayload(), [f.releaseA]);
  const bumped = clone(env);
  bumped.signed.counter = 99;
  expectReason(bumped, 'BAD_SIGNATURE');
  const swapped = clone(env);
  swapped.signed.files[0].sha256 = 'c'.repeat(64);
  expectReason(swapped, 'BAD_SIGNATURE');
  // A field the schema would strip is still covered by the signature.
  const extra = clone(env) as unknown as { signed: Record<string, unknown> };
  extra.signed.note = 'injected';
  expectReason(extra, 'BAD_SIGNATURE');
  const sig = clone(env);
  sig.signatures[0].sig = sign64Flip(sig.signatures[0].sig);
  expectReason(sig, 'BAD_SIGNATURE');
});

test('UNKNOWN_KEY: signed only by a key outside the list; checked before anything the payload claims', () => {
  expectReason(signManifest(manifestPayload(), [f.outsider]), 'UNKNOWN_KEY');
  // A forged manifest for another device still reports the signature problem.
  expectReason(signManifest(manifestPayload({ deviceId: 'dev_zzzzzzzz' }), [f.outsider]), 'UNKNOWN_KEY');
});

test('THRESHOLD_NOT_MET: too few distinct listed signers; a key signing twice counts once', () => {
  const list2 = createKeyList({ version: 2, root: f.root, keys: [f.releaseA, f.releaseB], threshold: 2, expiresAt: days(365), now: NOW });
  const opts = { keylist: list2 };
  const payload = manifestPayload({ keylistVersion: 2 });
  expectReason(signManifest(payload, [f.releaseA]), 'THRESHOLD_NOT_MET', opts);
  expectReason(signManifest(payload, [f.releaseA, f.releaseA]), 'THRESHOLD_NOT_MET', opts);
  expectReason(signManifest(payload, [f.releaseA, f.outsider]), 'THRESHOLD_NOT_MET', opts);
  assert.ok(verifyManifest(signManifest(payload, [f.releaseA, f.releaseB]), { ...base, ...opts }).ok);
  expectReason({ signed: payload, signatures: [] }, 'THRESHOLD_NOT_MET');
});

test('EXPIRED (freeze): at and after expiresAt', () => {
  const env = signManifest(manifestPayload({ expiresAt: days(1) }), [f.releaseA]);
  assert.ok(verifyManifest(env, { ...base, now: new Date(days(1).getTime() - 1) }).ok);
  expectReason(env, 'EXPIRED', { now: days(1) });
  expectReason(env, 'EXPIRED', { now: days(30) });
});

test('ROLLBACK: counter equal to or below the active one', () => {
  const env = signManifest(manifestPayload({ counter: 10 }), [f.releaseA]);
  expectReason(env, 'ROLLBACK', { activeCounter: 10 });
  expectReason(env, 'ROLLBACK', { activeCounter: 11 });
});

test('WRONG_DEVICE (mix-and-match): another device id or cohort', () => {
  const env = signManifest(manifestPayload({ deviceId: 'dev_otherdevice', cohort: 'greenhouse' }), [f.releaseA]);
  expectReason(env, 'WRONG_DEVICE');
  const mine = signManifest(manifestPayload({ cohort: 'greenhouse' }), [f.releaseA]);
  expectReason(mine, 'WRONG_DEVICE', { cohort: 'warehouse' });
  assert.ok(verifyManifest(mine, { ...base, cohort: 'greenhouse' }).ok);
});

test('AGENT_TOO_OLD: semver comparison, prerelease below release', () => {
  const env = signManifest(manifestPayload({ minAgentVersion: '0.3.0' }), [f.releaseA]);
  expectReason(env, 'AGENT_TOO_OLD', { agentVersion: '0.2.9' });
  expectReason(env, 'AGENT_TOO_OLD', { agentVersion: '0.3.0-rc.1' });
  for (const agentVersion of ['0.3.0', '0.10.0', '1.0.0+build.5']) assert.ok(verifyManifest(env, { ...base, agentVersion }).ok, agentVersion);
});

test('KEYLIST_EXPIRED: the trusted key list ran out, so nothing is accepted', () => {
  const env = signManifest(manifestPayload({ expiresAt: days(1000) }), [f.releaseA]);
  expectReason(env, 'KEYLIST_EXPIRED', { now: new Date(f.keylist.expiresAt) });
});

test('rotation: key list v2 adds B and drops A; devices accept it via the pinned root, then B is trusted and A is not', () => {
  const v2 = rotateKeyList(f.keylist, { add: [f.releaseB], retire: [f.releaseA.keyid], expiresAt: days(365), now: NOW });
  const v2env = signKeyList(v2, f.root.privateKeyPem);
  const byB = signManifest(manifestPayload({ keylistVersion: 2, counter: 11 }), [f.releaseB]);
  const byA = signManifest(manifestPayload({ keylistVersion: 1, counter: 11 }), [f.releaseA]);

  // Before the device has v2, B is unknown and the message says a newer list is needed.
  assert.match(expectReason(byB, 'UNKNOWN_KEY'), /key list v2, device has v1/);
  assert.ok(verifyManifest(byA, base).ok);

  const accepted = verifyKeyList(JSON.parse(JSON.stringify(v2env)), { pinnedRootKeys: [f.root], current: f.keylist, now: NOW });
  assert.ok(accepted.ok, accepted.ok ? '' : accepted.message);
  const after = { keylist: accepted.keylist };
  assert.ok(verifyManifest(byB, { ...base, ...after }).ok);
  expectReason(byA, 'UNKNOWN_KEY', after);
  // And the old list cannot come back.
  const back = verifyKeyList(f.keylistEnvelope, { pinnedRootKeys: [f.root], current: accepted.keylist, now: NOW });
  assert.equal(back.ok ? 'ok' : back.reason, 'KEYLIST_ROLLBACK');
});

test('every manifest reason code is exercised above', () => {
  assert.deepEqual([...seen].sort(), [...MANIFEST_REJECT_REASONS].sort());
});

function sign64Flip(sig: string): string {
  const raw = Buffer.from(sig, 'base64');
  raw[raw.length - 1] ^= 0x01;
  return raw.toString('base64');
}
