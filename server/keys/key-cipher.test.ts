import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { DEFAULT_KEK_FILE, KeyCipher, loadKeyCipher, parseKek } from './key-cipher.ts';
import { keylistExpiry } from './key-expiry.ts';

describe('key cipher', () => {
  const kek = randomBytes(32);
  test('round trip; bound to its key id; a wrong key or a flipped byte does not decrypt', () => {
    const c = new KeyCipher(kek);
    const stored = c.encrypt('k1', '-----BEGIN PRIVATE KEY-----\nabc\n');
    assert.match(stored, /^enc:v1:/);
    assert.ok(!stored.includes('PRIVATE'));
    assert.equal(c.decrypt('k1', stored), '-----BEGIN PRIVATE KEY-----\nabc\n');
    assert.notEqual(c.encrypt('k1', 'x'), c.encrypt('k1', 'x'), 'fresh IV each time');
    assert.throws(() => c.decrypt('k2', stored), /does not decrypt/);
    assert.throws(() => new KeyCipher(randomBytes(32)).decrypt('k1', stored), /does not decrypt/);
    const raw = Buffer.from(stored.slice(7), 'base64');
    raw[raw.length - 1] ^= 1;
    assert.throws(() => c.decrypt('k1', 'enc:v1:' + raw.toString('base64')), /does not decrypt/);
    assert.throws(() => c.decrypt('k1', '-----BEGIN'), /not encrypted/);
  });

  test('parseKek takes hex or base64 of 32 bytes, names the source otherwise', () => {
    assert.deepEqual(parseKek(kek.toString('hex'), 'x'), kek);
    assert.deepEqual(parseKek(kek.toString('base64') + '\n', 'x'), kek);
    assert.throws(() => parseKek('c2hvcnQ=', 'FLOTILLA_KEY_ENCRYPTION_KEY'), /FLOTILLA_KEY_ENCRYPTION_KEY: expected 32 bytes/);
  });

  test('without configuration a 0600 key file is generated in the data dir and reused', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'flotilla-kek-'));
    try {
      const a = await loadKeyCipher({ dataDir: dir });
      const file = path.join(dir, DEFAULT_KEK_FILE);
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      const b = await loadKeyCipher({ dataDir: dir });
      assert.equal(b.cipher.decrypt('k', a.cipher.encrypt('k', 'secret')), 'secret');
      assert.equal(parseKek(await readFile(file, 'utf8'), file).length, 32);
      await assert.rejects(loadKeyCipher({ dataDir: dir, file: path.join(dir, 'missing.key') }), /cannot read the key-encryption key/);
      const env = await loadKeyCipher({ dataDir: dir, key: kek.toString('hex') });
      assert.equal(env.source, 'FLOTILLA_KEY_ENCRYPTION_KEY');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('key list expiry', () => {
  const now = new Date('2030-01-01T00:00:00Z');
  test('no warning far from expiry; a warning naming the renewal inside the horizon; expired after', () => {
    assert.equal(keylistExpiry({ version: 2, expiresAt: '2030-03-01T00:00:00Z' }, now, 30 * 86400).warning, null);
    const soon = keylistExpiry({ version: 2, expiresAt: '2030-01-11T00:00:00Z' }, now, 30 * 86400);
    assert.equal(soon.expiresInS, 10 * 86400);
    assert.match(soon.warning!, /expires in 10 day\(s\).*flotilla keys renew/);
    const gone = keylistExpiry({ version: 2, expiresAt: '2029-12-31T00:00:00Z' }, now, 0);
    assert.equal(gone.expired, true);
    assert.ok(gone.expiresInS < 0);
    assert.match(gone.warning!, /expired/);
  });
});
