// Release keys (issue 11): no signing under an expired key list (409 naming the renewal), warnings
// long before expiry, private keys encrypted at rest, retired keys' private part deleted — checked
// against the bytes of the database file itself, as someone holding a copy of it would read them.
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eq } from 'drizzle-orm';
import { freePort } from '../agent/testing/harness.ts';
import { createKeyList, rotateKeyList, signKeyList, type KeyList } from '../firmware-bundles/key-list.ts';
import { generateKeyPair, publicKeyOf, type KeyPair } from '../firmware-bundles/keys.ts';
import { loadBundleDefinition } from '../firmware-bundles/load-definition.ts';
import { ControlPlane } from '../server/control-plane.ts';
import { releaseKeys } from '../server/db/schema.ts';
import { DEFAULT_KEK_FILE, KeyCipher, parseKek } from '../server/keys/key-cipher.ts';
import { createLogger } from '../server/logger.ts';
import { runCli } from './helpers/cli.ts';
import { startControlPlane, type TestPlane } from './helpers/control-plane.ts';
import { gemmModel } from './helpers/models.ts';

const BUNDLE_DEF = path.join(import.meta.dirname, '..', 'firmware-bundles', 'tabular-demo', 'bundle.json');
const FACTS = { arch: 'x64', cpus: 2, memoryBytes: 2e9, os: 'linux', agentVersion: '0.1.0' };
const inDays = (d: number) => new Date(Date.now() + d * 86_400_000);

describe('release keys: expiry, encryption at rest, retirement', { timeout: 120_000 }, () => {
  let cp: TestPlane;
  let root: KeyPair;
  let list: KeyList;
  let deviceId: string;

  const upload = async (next: KeyList) => {
    const r = await cp.api('PUT', '/api/v1/keys/keylist', { json: signKeyList(next, root.privateKeyPem) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    list = next;
  };
  /** The database as a copy of its files would show it: the main file and its write-ahead log. */
  const dbBytes = async () => {
    const file = path.join(cp.dataDir, 'flotilla.db');
    const parts = await Promise.all(['', '-wal'].map((s) => readFile(file + s).catch(() => Buffer.alloc(0))));
    return Buffer.concat(parts);
  };
  const deploy = () => cp.api('POST', '/api/v1/deployments', { json: { bundle: 'tab@1', device: deviceId } });

  before(async () => {
    cp = await startControlPlane({ httpPort: await freePort(), mqttPort: await freePort() }); // fixed: the last test restarts it
    root = generateKeyPair();
    const release = (await cp.api('POST', '/api/v1/keys/release')).body;
    // A key list that expires in two seconds.
    await upload(createKeyList({ version: 1, root, keys: [release], threshold: 1, expiresAt: new Date(Date.now() + 2000), now: new Date(Date.now() - 1000) }));
    assert.equal((await cp.api('POST', '/api/v1/models/tab/versions', { body: gemmModel() as BodyInit })).status, 201);
    const { definition, labels } = await loadBundleDefinition(BUNDLE_DEF);
    assert.equal((await cp.api('POST', '/api/v1/bundles', { json: { model: 'tab@1', definition, labels } })).status, 201);
    const token = (await cp.api('POST', '/api/v1/enroll-tokens', { json: {} })).body.token;
    deviceId = (await cp.api('POST', '/api/v1/enroll', { token: null, json: { token, facts: FACTS } })).body.deviceId;
  });
  after(async () => cp?.stop());

  test('an expired key list cannot sign: 409 naming the renewal command; renewing makes deployments work again', async () => {
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(list.expiresAt) - Date.now() + 50)));
    const refused = await deploy();
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, 'conflict');
    assert.match(refused.body.error.message, /expired/);
    assert.match(refused.body.error.message, /flotilla keys renew --root-key/);
    assert.equal(refused.body.error.details.reason, 'KEYLIST_EXPIRED');
    const shown = (await cp.api('GET', '/api/v1/keys')).body.expiry;
    assert.equal(shown.expired, true);
    assert.match(shown.warning, /keys renew/);
    assert.match(await (await fetch(`${cp.url}/metrics`)).text(), /^flotilla_keylist_expires_in_seconds\{version="1"\} -\d+$/m);
    await upload(rotateKeyList(list, { expiresAt: inDays(365) }));
    assert.equal((await deploy()).status, 201);
    assert.equal((await cp.api('GET', '/api/v1/keys')).body.expiry.warning, null);
  });

  test('warned long before expiry: GET /keys, flotilla keys show, /metrics', async () => {
    await upload(rotateKeyList(list, { expiresAt: inDays(10) })); // inside the default 30-day horizon
    const expiry = (await cp.api('GET', '/api/v1/keys')).body.expiry;
    assert.equal(expiry.expired, false);
    assert.match(expiry.warning, /expires in 10 day/);
    const metric = /^flotilla_keylist_expires_in_seconds\{version="3"\} (\d+)$/m.exec(await (await fetch(`${cp.url}/metrics`)).text());
    assert.ok(metric && Math.abs(Number(metric[1]) - 10 * 86400) < 120, metric?.[0]);
    const cli = await runCli(['keys', 'show'], { FLOTILLA_URL: cp.url, FLOTILLA_TOKEN: cp.adminToken });
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /WARNING: key list v3 expires in 10 day/);
    assert.match(cli.stderr, /keys renew/);
  });

  test('release private keys are encrypted at rest: the database file alone holds no plaintext key; the key file opens them', async () => {
    const rows = await cp.plane.db.select().from(releaseKeys);
    assert.ok(rows.length >= 1);
    for (const r of rows) assert.match(r.privateKeyPem ?? '', /^enc:v1:/);
    const bytes = await dbBytes();
    assert.ok(!bytes.includes('PRIVATE KEY'), 'no PEM private key in the database files');
    const kek = parseKek(await readFile(path.join(cp.dataDir, DEFAULT_KEK_FILE), 'utf8'), 'kek');
    assert.equal((await stat(path.join(cp.dataDir, DEFAULT_KEK_FILE))).mode & 0o777, 0o600);
    const pem = new KeyCipher(kek).decrypt(rows[0].keyid, rows[0].privateKeyPem!);
    assert.equal(publicKeyOf(pem).keyid, rows[0].keyid);
  });

  test('a retired release key: its private part is deleted and cannot be read back from the database file', async () => {
    const [old] = await cp.plane.db.select().from(releaseKeys).where(eq(releaseKeys.keyid, list.keys[0].keyid));
    const oldCiphertext = old.privateKeyPem!;
    const fresh = (await cp.api('POST', '/api/v1/keys/release')).body;
    await upload(rotateKeyList(list, { add: [fresh], retire: [old.keyid], expiresAt: inDays(365) }));
    const [after] = await cp.plane.db.select().from(releaseKeys).where(eq(releaseKeys.keyid, old.keyid));
    assert.ok(after.retiredAt);
    assert.equal(after.privateKeyPem, null);
    const bytes = await dbBytes();
    // Neither the ciphertext nor any piece of it is left in free pages or the log.
    assert.ok(!bytes.includes(oldCiphertext.slice(7, 47)), 'the retired ciphertext is gone from the file');
    assert.equal((await deploy()).status, 201, 'the new key signs');
  });

  test('plaintext keys from an older database are encrypted at start, retired ones deleted; a wrong key-encryption key fails the start in one line', async () => {
    const legacy = generateKeyPair();
    const retired = generateKeyPair();
    await cp.plane.db.insert(releaseKeys).values([
      { keyid: legacy.keyid, publicKey: legacy.publicKey, privateKeyPem: legacy.privateKeyPem },
      { keyid: retired.keyid, publicKey: retired.publicKey, privateKeyPem: retired.privateKeyPem, retiredAt: new Date().toISOString() },
    ]);
    const config = cp.plane.config;
    await cp.plane.stop();
    const wrong = new ControlPlane({ ...config, keyEncryptionKey: Buffer.alloc(32, 7).toString('base64') }, createLogger('silent'));
    await assert.rejects(wrong.start(), /does not decrypt with this key-encryption key/);
    await wrong.stop();
    const next = new ControlPlane(config, createLogger('silent'));
    await next.start();
    cp.plane = next;
    const rows = new Map((await next.db.select().from(releaseKeys)).map((r) => [r.keyid, r]));
    assert.match(rows.get(legacy.keyid)!.privateKeyPem!, /^enc:v1:/);
    assert.equal(rows.get(retired.keyid)!.privateKeyPem, null);
    assert.ok(!(await dbBytes()).includes('PRIVATE KEY'), 'no plaintext left after the migration');
    const audit = (await cp.api('GET', '/api/v1/audit?action=key.release.secure')).body.entries;
    assert.deepEqual(audit[0].details, { encrypted: 1, purged: 1 });
  });
});
