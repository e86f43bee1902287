// Release keys and key lists. The server creates release keys and signs manifests with them; the
// offline root key (held by the CLI user, never sent here) signs the list of release keys. The server
// accepts a new key list only if the root it pinned from the first list signed it.
import { desc, eq, isNull } from 'drizzle-orm';
import { generateKeyPair } from '../../firmware-bundles/keys.ts';
import { verifyKeyList, type KeyList } from '../../firmware-bundles/key-list.ts';
import type { SignedEnvelope } from '../../firmware-bundles/envelope.ts';
import { recordAudit } from '../audit/audit-log.ts';
import type { Db, Tx } from '../db/client.ts';
import { keyLists, releaseKeys } from '../db/schema.ts';
import { Conflict, Invalid, ServiceError } from '../errors.ts';

export async function createReleaseKey(db: Db, actor: string): Promise<{ keyid: string; publicKey: string }> {
  const pair = generateKeyPair();
  await db.transaction(async (tx) => {
    await tx.insert(releaseKeys).values({ keyid: pair.keyid, publicKey: pair.publicKey, privateKeyPem: pair.privateKeyPem });
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
  return db.transaction(async (tx) => {
    const current = await currentKeyList(tx);
    const candidateRoot = (envelope as { signed?: { root?: { keyid: string; publicKey: string } } })?.signed?.root;
    const pinned = current ? current.signed.root : candidateRoot;
    if (!pinned) throw Invalid('key list has no root');
    const check = verifyKeyList(envelope, { pinnedRootKeys: [pinned], current: current?.signed, now: new Date() });
    if (!check.ok) throw new ServiceError('invalid_request', `key list refused (${check.reason}): ${check.message}`, { reason: check.reason });
    const list = check.keylist;
    if (current && list.version === current.signed.version) return list; // idempotent re-upload
    if (current && list.version !== current.signed.version + 1) throw Invalid(`key list version must be ${current.signed.version + 1}, got ${list.version}`);
    // Every listed release key must be one this server holds, or manifests could never be signed with it.
    const held = new Set((await tx.select({ keyid: releaseKeys.keyid }).from(releaseKeys)).map((k) => k.keyid));
    const missing = list.keys.filter((k) => !held.has(k.keyid)).map((k) => k.keyid);
    if (missing.length) throw Invalid(`key list names release keys this server does not hold: ${missing.join(', ')}`);
    if (list.keys.length < list.threshold) throw Invalid('key list has fewer keys than its threshold');
    await tx.insert(keyLists).values({ version: list.version, rootKeyid: list.root.keyid, envelope: envelope as object, createdBy: actor });
    const listed = new Set(list.keys.map((k) => k.keyid));
    for (const k of held) {
      if (!listed.has(k)) await tx.update(releaseKeys).set({ retiredAt: new Date().toISOString() }).where(eq(releaseKeys.keyid, k));
    }
    await recordAudit(tx, actor, 'key.list.upload', `keylist v${list.version}`, { keys: [...listed], threshold: list.threshold });
    return list;
  });
}

/** The private keys that sign manifests now: those in the current key list, up to its threshold. */
export async function signingKeys(db: Tx): Promise<{ keylist: SignedEnvelope<KeyList>; keys: Array<{ keyid: string; privateKeyPem: string }> }> {
  const keylist = await requireKeyList(db);
  const listed = new Set(keylist.signed.keys.map((k) => k.keyid));
  const rows = await db.select().from(releaseKeys).where(isNull(releaseKeys.retiredAt));
  const keys = rows.filter((r) => listed.has(r.keyid)).map((r) => ({ keyid: r.keyid, privateKeyPem: r.privateKeyPem }));
  if (keys.length < keylist.signed.threshold) throw Conflict(`only ${keys.length} of ${keylist.signed.threshold} required release keys are available`);
  return { keylist, keys: keys.slice(0, keylist.signed.threshold) };
}

export async function listReleaseKeys(db: Db) {
  const rows = await db.select().from(releaseKeys).orderBy(releaseKeys.createdAt);
  return rows.map(({ privateKeyPem: _p, ...r }) => r);
}
