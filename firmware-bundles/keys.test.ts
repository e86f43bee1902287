import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { KeyError, generateKeyPair, keyIdOf, publicKeyOf, readPrivateKeyFile, readPublicKeyFile, sign, verify, writePrivateKeyFile, writePublicKeyFile } from './keys.ts';

const dir = await mkdtemp(join(tmpdir(), 'flotilla-keys-'));
after(() => rm(dir, { recursive: true, force: true }));
const msg = new TextEncoder().encode('deploy tabular-demo@3');

test('generates Ed25519 pairs whose keyid is sha256 of the raw public key', () => {
  const pair = generateKeyPair();
  const raw = Buffer.from(pair.publicKey, 'base64');
  assert.equal(raw.length, 32);
  assert.equal(pair.keyid, createHash('sha256').update(raw).digest('hex'));
  assert.equal(keyIdOf(pair.publicKey), pair.keyid);
  assert.match(pair.privateKeyPem, /^-----BEGIN PRIVATE KEY-----/);
  assert.deepEqual(publicKeyOf(pair.privateKeyPem), { keyid: pair.keyid, publicKey: pair.publicKey });
});

test('sign/verify roundtrip; altered message, other key or garbage fail', () => {
  const a = generateKeyPair();
  const b = generateKeyPair();
  const sig = sign(msg, a.privateKeyPem);
  assert.equal(Buffer.from(sig, 'base64').length, 64);
  assert.equal(verify(msg, sig, a.publicKey), true);
  const altered = Uint8Array.from(msg);
  altered[0] ^= 1;
  assert.equal(verify(altered, sig, a.publicKey), false);
  assert.equal(verify(msg, sig, b.publicKey), false);
  const flipped = Buffer.from(sig, 'base64');
  flipped[10] ^= 0x40;
  assert.equal(verify(msg, flipped.toString('base64'), a.publicKey), false);
  for (const garbage of ['', 'not base64!', sig.slice(0, 40), `${sig}AAAA`]) assert.equal(verify(msg, garbage, a.publicKey), false);
  assert.equal(verify(msg, sig, 'AAAA'), false);
  assert.equal(verify(msg, sig, Buffer.alloc(32).toString('base64')), false);
});

test('private key files are written 0600, never clobbered, and refused when readable by others', async () => {
  const pair = generateKeyPair();
  const path = join(dir, 'release.key');
  await writePrivateKeyFile(path, pair.privateKeyPem);
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  assert.equal(await readPrivateKeyFile(path), pair.privateKeyPem);
  await assert.rejects(writePrivateKeyFile(path, generateKeyPair().privateKeyPem), (e: unknown) => e instanceof KeyError && e.code === 'KEY_FILE_EXISTS');
  assert.equal(await readFile(path, 'utf8'), pair.privateKeyPem);
  await chmod(path, 0o644);
  await assert.rejects(readPrivateKeyFile(path), (e: unknown) => e instanceof KeyError && e.code === 'INSECURE_KEY_FILE');
  await writePrivateKeyFile(path, pair.privateKeyPem, { overwrite: true });
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  await assert.rejects(writePrivateKeyFile(join(dir, 'junk.key'), 'not a key'), (e: unknown) => e instanceof KeyError && e.code === 'INVALID_KEY');
});

test('public key files round-trip and a mismatched keyid is refused', async () => {
  const pair = generateKeyPair();
  const path = join(dir, 'root.pub.json');
  await writePublicKeyFile(path, pair);
  assert.deepEqual(await readPublicKeyFile(path), { keyid: pair.keyid, publicKey: pair.publicKey });
  await writeFile(path, JSON.stringify({ keyid: generateKeyPair().keyid, publicKey: pair.publicKey }));
  await assert.rejects(readPublicKeyFile(path), (e: unknown) => e instanceof KeyError && e.code === 'KEY_MISMATCH');
});
