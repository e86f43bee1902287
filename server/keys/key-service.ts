// Release keys and key lists. The server creates release keys and signs manifests with them; the
// offline root key (held by the CLI user, never sent here) signs the list of release keys. The server
// accepts a new key list only if the root it pinned from the first list signed it.
//
// Release private keys are stored encrypted (key-cipher.ts); a key the current list no longer names is
// retired and its private part deleted, and the freed pages are wiped (VACUUM), so neither a retired
// key nor a plaintext one can be read back from the database file.
import { and, desc, eq, isNotNull, isNull, like } from 'drizzle-orm';
import type { Logger } from 'pino';
import { generateKeyPair } from '../../firmware-bundles/keys.ts';
import { verifyKeyList, type KeyList } from '../../firmware-bundles/key-list.ts';
import type { SignedEnvelope } from '../../firmware-bundles/envelope.ts';
import { recordAudit } from '../audit/audit-log.ts';
import type { Db, Tx } from '../db/client.ts';
import { keyLists, releaseKeys } from '../db/schema.ts';
import { wipeFreedPages } from '../db/wipe-freed-pages.ts';
import { Conflict, Invalid, ServiceError } from '../errors.ts';
import { KeyCipher } from './key-cipher.ts';

/** The CLI command that renews an expiring key list with the offline root (named in errors and warnings). */
export const RENEW_COMMAND = 'flotilla keys renew --root-key <file>';

export async function createReleaseKey(db: Db, cipher: KeyCipher, actor: string): Promise<{ keyid: string; publicKey: string }> {
  const pair = generateKeyPair();
  await db.transaction(async (tx) => {
    await tx.insert(releaseKeys).values({ keyid: pair.keyid, publicKey: pair.publicKey, privateKeyPem: cipher.encrypt(pair.keyid, pair.privateKeyPem) });
    await recordAudit(tx, actor, 'key.release.create', pair.keyid);
  });
  return { keyid: pair.keyid, publicKey: pair.publicKey };
}

export async function currentKeyList(db: Tx): Promise<SignedEnvelope<KeyList> | null> {
  const row = await db.query.keyLists.findFirst({ orderBy: desc(keyLists.version) });
  return row ? (row.envelope as SignedEnvelope<KeyList>) : null;
}

/** The current key list or a 409 that says how to create one. */
export async function requireKeyList(db: Tx): Promise<SignedEnvelope<KeyList>> {
  const list = await currentKeyList(db);
  if (!list) throw Conflict('no signing keys yet: run `flotilla keys init --root-key <file>` first');
  return list;
}

export async function rootOf(db: Tx): Promise<{ keyid: string; publicKey: string } | null> {
  const list = await currentKeyList(db);
  return list ? list.signed.root : null;
}

/** Stores a root-signed key list after verifying it against the pinned root (the first list pins it). */
export async function uploadKeyList(db: Db, envelope: unknown, actor: string): Promise<KeyList> {
  const { list, retired } = await db.transaction(async (tx) => {
    const current = await currentKeyList(tx);
    const candidateRoot = (envelope as { signed?: { root?: { keyid: string; publicKey: string } } })?.signed?.root;
    const pinned = current ? current.signed.root : candidateRoot;
    if (!pinned) throw Invalid('key list has no root');
    const check = verifyKeyList(envelope, { pinnedRootKeys: [pinned], current: current?.signed, now: new Date() });
    if (!check.ok) throw new ServiceError('invalid_request', `key list refused (${check.reason}): ${check.message}`, { reason: check.reason });
    const list = check.keylist;
    if (current && list.version === current.signed.version) return { list, retired: [] as string[] }; // idempotent re-upload
    if (current && list.version !== current.signed.version + 1) throw Invalid(`key list version must be ${current.signed.version + 1}, got ${list.version}`);
    // Every listed release key must be one this server holds (and can still sign with), or manifests could never be signed with it.
    const held = new Set((await tx.select({ keyid: releaseKeys.keyid }).from(releaseKeys).where(isNotNull(releaseKeys.privateKeyPem))).map((k) => k.keyid));
    const missing = list.keys.filter((k) => !held.has(k.keyid)).map((k) => k.keyid);
    if (missing.length) throw Invalid(`key list names release keys this server does not hold: ${missing.join(', ')}`);
    if (list.keys.length < list.threshold) throw Invalid('key list has fewer keys than its threshold');
    await tx.insert(keyLists).values({ version: list.version, rootKeyid: list.root.keyid, envelope: envelope as object, createdBy: actor });
    const listed = new Set(list.keys.map((k) => k.keyid));
    const retired = [...held].filter((k) => !listed.has(k));
    for (const k of retired) {
      // Retired for good: the private part goes, so the key can never sign again (nor leak from a backup taken later).
      await tx.update(releaseKeys).set({ retiredAt: new Date().toISOString(), privateKeyPem: null }).where(eq(releaseKeys.keyid, k));
    }
    await recordAudit(tx, actor, 'key.list.upload', `keylist v${list.version}`, { keys: [...listed], threshold: list.threshold, retired, expiresAt: list.expiresAt });
    return { list, retired };
  });
  if (retired.length) await wipeFreedPages(db);
  return list;
}

/** The private keys that sign manifests now: those in the current, unexpired key list, up to its threshold. */
export async function signingKeys(db: Tx, cipher: KeyCipher, now = new Date()): Promise<{ keylist: SignedEnvelope<KeyList>; keys: Array<{ keyid: string; privateKeyPem: string }> }> {
  const keylist = await requireKeyList(db);
  // Devices refuse manifests under an expired key list (KEYLIST_EXPIRED): signing one would only freeze them.
  if (Date.parse(keylist.signed.expiresAt) <= now.getTime()) {
    throw Conflict(`key list v${keylist.signed.version} expired at ${keylist.signed.expiresAt}; devices would refuse anything signed under it. Renew it with the offline root: \`${RENEW_COMMAND}\``, {
      reason: 'KEYLIST_EXPIRED',
      expiresAt: keylist.signed.expiresAt,
      command: RENEW_COMMAND,
    });
  }
  const listed = new Set(keylist.signed.keys.map((k) => k.keyid));
  const rows = await db.select().from(releaseKeys).where(and(isNull(releaseKeys.retiredAt), isNotNull(releaseKeys.privateKeyPem)));
  const keys = rows.filter((r) => listed.has(r.keyid)).map((r) => ({ keyid: r.keyid, privateKeyPem: cipher.decrypt(r.keyid, r.privateKeyPem!) }));
  if (keys.length < keylist.signed.threshold) throw Conflict(`only ${keys.length} of ${keylist.signed.threshold} required release keys are available`);
  return { keylist, keys: keys.slice(0, keylist.signed.threshold) };
}

export async function listReleaseKeys(db: Db) {
  const rows = await db.select().from(releaseKeys).orderBy(releaseKeys.createdAt);
  return rows.map(({ privateKeyPem: _p, ...r }) => r);
}

/**
 * At start: encrypts release keys still stored in plaintext (databases from before encryption at rest),
 * deletes the private part of retired keys, checks that the key-encryption key opens the keys held,
 * and wipes the freed pages when anything changed. Throws one line if the key-encryption key is wrong.
 */
export async function secureKeysAtRest(db: Db, cipher: KeyCipher, logger: Logger): Promise<{ encrypted: number; purged: number }> {
  // A wrong key-encryption key fails the start before anything is written (not at the first deployment).
  const held = await db.select().from(releaseKeys).where(and(isNull(releaseKeys.retiredAt), like(releaseKeys.privateKeyPem, 'enc:%')));
  for (const r of held) cipher.decrypt(r.keyid, r.privateKeyPem!);
  const changed = await db.transaction(async (tx) => {
    const plain = await tx.select().from(releaseKeys).where(like(releaseKeys.privateKeyPem, '-----BEGIN%'));
    let encrypted = 0;
    for (const r of plain) {
      if (r.retiredAt) continue;
      await tx.update(releaseKeys).set({ privateKeyPem: cipher.encrypt(r.keyid, r.privateKeyPem!) }).where(eq(releaseKeys.keyid, r.keyid));
      encrypted++;
    }
    const purged = (await tx.update(releaseKeys).set({ privateKeyPem: null }).where(and(isNotNull(releaseKeys.retiredAt), isNotNull(releaseKeys.privateKeyPem))).returning({ keyid: releaseKeys.keyid })).length;
    if (encrypted || purged) await recordAudit(tx, 'system', 'key.release.secure', 'release_keys', { encrypted, purged });
    return { encrypted, purged };
  });
  if (changed.encrypted || changed.purged) {
    await wipeFreedPages(db);
    logger.info(changed, 'release keys secured at rest (plaintext encrypted, retired keys deleted)');
  }
  return changed;
}
