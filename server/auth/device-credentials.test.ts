import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { describe, mock, test } from 'node:test';
import { hashDeviceSecret, verifyDeviceSecret } from './device-credentials.ts';
import { randomSecret, scryptHash } from './secrets.ts';

describe('device credential hashes', () => {
  const secret = randomSecret('fld');

  test('the fast form is sha256 of the secret; the right secret passes, any other fails', async () => {
    const stored = hashDeviceSecret(secret);
    assert.match(stored, /^sha256\$[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(await verifyDeviceSecret(secret, stored), { ok: true, needsRehash: false });
    assert.deepEqual(await verifyDeviceSecret(secret + 'x', stored), { ok: false, needsRehash: false });
    assert.deepEqual(await verifyDeviceSecret(randomSecret('fld'), stored), { ok: false, needsRehash: false });
    assert.deepEqual(await verifyDeviceSecret(secret, 'sha256$AAAA'), { ok: false, needsRehash: false }, 'a corrupt row refuses, never throws');
  });

  test('a legacy scrypt hash still verifies, and asks to be replaced only when the secret was right', async () => {
    const legacy = await scryptHash(secret);
    assert.match(legacy, /^scrypt\$/);
    assert.deepEqual(await verifyDeviceSecret(secret, legacy), { ok: true, needsRehash: true });
    assert.deepEqual(await verifyDeviceSecret('fld_wrong', legacy), { ok: false, needsRehash: false });
  });

  test('the comparison goes through crypto.timingSafeEqual on the two 32-byte digests', async (t) => {
    const spy = mock.method(crypto, 'timingSafeEqual');
    syncBuiltinESMExports(); // the module's named import of timingSafeEqual now sees the spy
    t.after(() => {
      spy.mock.restore();
      syncBuiltinESMExports();
    });
    const stored = hashDeviceSecret(secret);
    assert.equal((await verifyDeviceSecret('fld_' + 'a'.repeat(43), stored)).ok, false);
    assert.equal((await verifyDeviceSecret(secret, stored)).ok, true);
    assert.equal(spy.mock.callCount(), 2);
    for (const call of spy.mock.calls) {
      const [a, b] = call.arguments as [Buffer, Buffer];
      assert.equal(a.length, 32);
      assert.equal(b.length, 32);
    }
  });
});
