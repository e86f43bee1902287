// Bundles on disk, laid out so a kill -9 at any moment leaves a bootable device:
//
//   bundles/<counter>-<digest>/   model.onnx, bundle.json, manifest.json (the signed envelope that
//                                 was verified), keylist.json (the key list that verified it), meta.json
//   staging/<counter>-<digest>/   downloads in progress (<file>.part, resumable) and verified files
//   current  -> bundles/<...>     symlink, replaced atomically (temp symlink + rename + dir fsync)
//   previous -> bundles/<...>     the bundle to fall back to; stays on disk until the next success
//
// A bundle directory is complete and fsynced before `current` ever points at it, and every start
// re-verifies the current bundle (signatures at the time it was verified, then every file's sha256),
// falling back to `previous` when it is broken.
import { copyFile, link, lstat, mkdir, readFile, readdir, readlink, rename, rm, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BundleDefinition } from '../firmware-bundles/definition.ts';
import type { SignedEnvelope } from '../firmware-bundles/envelope.ts';
import { verifyFile } from '../firmware-bundles/file-digest.ts';
import { verifyKeyList } from '../firmware-bundles/key-list.ts';
import type { PublicKeyRef } from '../firmware-bundles/keys.ts';
import { verifyManifest, type DeploymentManifest } from '../firmware-bundles/manifest.ts';
import { fsyncDir, fsyncFile, replaceSymlink, writeJsonAtomic } from './fs-atomic.ts';

const NAME = /^\d+-[0-9a-f]{16}$/;
export const MANIFEST_FILE = 'manifest.json';
export const KEYLIST_FILE = 'keylist.json';
export const META_FILE = 'meta.json';

/** A bundle installed under bundles/, with what the agent needs to run and report it. */
export interface InstalledBundle {
  name: string;
  dir: string;
  manifest: DeploymentManifest;
  manifestEnvelope: SignedEnvelope<Record<string, unknown>>;
  definition: BundleDefinition;
  modelPath: string;
  modelSha256: string;
  verifiedAt: string;
  activatedAt: string | null;
}

export interface BundleMeta {
  verifiedAt: string;
  activatedAt?: string;
}

/** What a start-up verification needs to know about the device. */
export interface VerifyContext {
  pinnedRoot: PublicKeyRef | null;
  deviceId: string;
  agentVersion: string;
}

export class BundleError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'BundleError';
  }
}

/** Directory name of a manifest: counter first (sorts), then a prefix of its payload digest. */
export function bundleName(counter: number, digest: string): string {
  return `${counter}-${digest.slice(0, 16)}`;
}

export class BundleStore {
  readonly bundlesDir: string;
  readonly stagingRoot: string;
  private readonly currentLink: string;
  private readonly previousLink: string;

  constructor(readonly dataDir: string) {
    this.bundlesDir = path.join(dataDir, 'bundles');
    this.stagingRoot = path.join(dataDir, 'staging');
    this.currentLink = path.join(dataDir, 'current');
    this.previousLink = path.join(dataDir, 'previous');
  }

  async init(): Promise<void> {
    await mkdir(this.bundlesDir, { recursive: true, mode: 0o700 });
    await mkdir(this.stagingRoot, { recursive: true, mode: 0o700 });
    // Temp files of interrupted atomic writes (a crash between write and rename).
    for (const entry of await readdir(this.dataDir)) if (entry.startsWith('.') && entry.endsWith('.tmp')) await rm(path.join(this.dataDir, entry), { force: true });
  }

  /** The staging directory for a manifest (created; partial downloads in it survive restarts). */
  async stagingDir(name: string): Promise<string> {
    const dir = path.join(this.stagingRoot, name);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  async pointer(which: 'current' | 'previous'): Promise<string | null> {
    try {
      const target = await readlink(which === 'current' ? this.currentLink : this.previousLink);
      const name = path.basename(target);
      return NAME.test(name) ? name : null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EINVAL') return null;
      throw err;
    }
  }

  /** Reads an installed bundle's metadata (no hashing). */
  async read(name: string): Promise<InstalledBundle> {
    const dir = path.join(this.bundlesDir, name);
    const manifestEnvelope = JSON.parse(await readFile(path.join(dir, MANIFEST_FILE), 'utf8')) as SignedEnvelope<Record<string, unknown>>;
    const meta = JSON.parse(await readFile(path.join(dir, META_FILE), 'utf8')) as BundleMeta;
    const manifest = manifestEnvelope.signed as unknown as DeploymentManifest;
    const def = BundleDefinition.safeParse(JSON.parse(await readFile(path.join(dir, 'bundle.json'), 'utf8')));
    if (!def.success) throw new BundleError('INVALID_BUNDLE', `${name}: bundle.json: ${def.error.issues[0].message}`);
    const model = manifest.files.find((f) => f.path === 'model.onnx');
    if (!model) throw new BundleError('INVALID_BUNDLE', `${name}: manifest names no model.onnx`);
    return {
      name,
      dir,
      manifest,
      manifestEnvelope,
      definition: def.data,
      modelPath: path.join(dir, 'model.onnx'),
      modelSha256: model.sha256,
      verifiedAt: meta.verifiedAt,
      activatedAt: meta.activatedAt ?? null,
    };
  }

  /**
   * Re-verifies an installed bundle: the key list against the pinned root and the manifest against
   * it (both as of when the agent verified them, so an expiry since then does not brick a working
   * device), then each file's size and sha256. Throws BundleError with a reason code.
   */
  async verifyInstalled(name: string, ctx: VerifyContext): Promise<InstalledBundle> {
    let bundle: InstalledBundle;
    try {
      bundle = await this.read(name);
    } catch (err) {
      throw err instanceof BundleError ? err : new BundleError('INVALID_BUNDLE', `${name}: ${(err as Error).message}`);
    }
    if (!ctx.pinnedRoot) throw new BundleError('UNKNOWN_ROOT', 'no trust root pinned');
    const keylistEnvelope = JSON.parse(await readFile(path.join(bundle.dir, KEYLIST_FILE), 'utf8').catch(() => 'null')) as unknown;
    const when = new Date(bundle.verifiedAt);
    if (Number.isNaN(when.getTime())) throw new BundleError('INVALID_BUNDLE', `${name}: bad verifiedAt`);
    const kl = verifyKeyList(keylistEnvelope, { pinnedRootKeys: [ctx.pinnedRoot], now: when });
    if (!kl.ok) throw new BundleError(kl.reason, `${name}: key list: ${kl.message}`);
    const mf = verifyManifest(bundle.manifestEnvelope, { keylist: kl.keylist, deviceId: ctx.deviceId, activeCounter: null, agentVersion: ctx.agentVersion, now: when });
    if (!mf.ok) throw new BundleError(mf.reason, `${name}: manifest: ${mf.message}`);
    for (const file of mf.manifest.files) {
      let r;
      try {
        r = await verifyFile(path.join(bundle.dir, file.path), file);
      } catch (err) {
        throw new BundleError('SIZE_MISMATCH', `${name}/${file.path}: ${(err as Error).message}`);
      }
      if (!r.ok) throw new BundleError(r.reason, `${name}/${file.path}: ${r.message}`);
    }
    return { ...bundle, manifest: mf.manifest };
  }

  /**
   * Moves a fully verified staging directory into bundles/ and points `current` at it (the old
   * current becomes `previous`). Every file and directory is fsynced before the pointer moves.
   */
  async install(name: string, envelopes: { manifest: unknown; keylist: unknown }, meta: BundleMeta): Promise<void> {
    const current = await this.commitStaging(name, envelopes, meta);
    if (current) await replaceSymlink(this.previousLink, path.join('bundles', current));
    await replaceSymlink(this.currentLink, path.join('bundles', name));
  }

  /**
   * A re-signed manifest for the files `current` already holds (new counter and expiry, maybe new
   * agent settings): a new bundle directory with the same files hard-linked (no download, no
   * copy of the model) and the new envelopes, then `current` moves to it. `previous` stays the
   * fallback it was; the old directory goes. A crash before the pointer moves leaves the old one
   * current, after it the new one: both verify.
   */
  async adopt(from: string, name: string, envelopes: { manifest: unknown; keylist: unknown }, meta: BundleMeta): Promise<void> {
    const source = path.join(this.bundlesDir, from);
    const staging = path.join(this.stagingRoot, name);
    await rm(staging, { recursive: true, force: true });
    await mkdir(staging, { recursive: true, mode: 0o700 });
    for (const entry of await readdir(source)) {
      if (entry === MANIFEST_FILE || entry === KEYLIST_FILE || entry === META_FILE) continue;
      await link(path.join(source, entry), path.join(staging, entry)).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'EXDEV' || err.code === 'EPERM' || err.code === 'ENOTSUP') return copyFile(path.join(source, entry), path.join(staging, entry));
        throw err;
      });
    }
    await this.commitStaging(name, envelopes, meta);
    await replaceSymlink(this.currentLink, path.join('bundles', name));
    if (from !== (await this.pointer('previous'))) await rm(source, { recursive: true, force: true });
  }

  /** Writes the envelopes into a staging directory, fsyncs it and moves it under bundles/; returns the current pointer. */
  private async commitStaging(name: string, envelopes: { manifest: unknown; keylist: unknown }, meta: BundleMeta): Promise<string | null> {
    const staging = path.join(this.stagingRoot, name);
    // Plain writes: nothing reads staging/ as a bundle, the loop below fsyncs every file, and the
    // directory becomes a bundle by one rename (a temp file + rename + directory fsync per file, as
    // writeJsonAtomic does, was 3 × 8 file operations more per update, for nothing).
    for (const [file, value] of [[MANIFEST_FILE, envelopes.manifest], [KEYLIST_FILE, envelopes.keylist], [META_FILE, meta]] as const) {
      await writeFile(path.join(staging, file), JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });
    }
    for (const entry of await readdir(staging)) await fsyncFile(path.join(staging, entry));
    await fsyncDir(staging);

    const target = path.join(this.bundlesDir, name);
    const current = await this.pointer('current');
    const previous = await this.pointer('previous');
    if (current === name) throw new BundleError('ACTIVATION_FAILED', `${name} is already current`);
    // Left over from a crash between this rename and the pointer swap: not in use, replace it.
    if (name !== previous) await rm(target, { recursive: true, force: true });
    else throw new BundleError('ACTIVATION_FAILED', `${name} is the previous bundle`);
    await rename(staging, target);
    await fsyncDir(this.bundlesDir);
    await fsyncDir(this.stagingRoot);
    return current;
  }

  /** Points `current` back at `previous` (probation failure, rollback command); forgets `previous`. */
  async revert(): Promise<string> {
    const previous = await this.pointer('previous');
    if (!previous) throw new BundleError('NO_PREVIOUS', 'there is no previous bundle to roll back to');
    await replaceSymlink(this.currentLink, path.join('bundles', previous));
    await unlink(this.previousLink).catch(() => {});
    await fsyncDir(this.dataDir);
    return previous;
  }

  /** Sets `current` to a bundle directly (start-up fallback). */
  async setCurrent(name: string | null): Promise<void> {
    if (name) await replaceSymlink(this.currentLink, path.join('bundles', name));
    else await unlink(this.currentLink).catch(() => {});
    await fsyncDir(this.dataDir);
  }

  async clearPrevious(): Promise<void> {
    await unlink(this.previousLink).catch(() => {});
    await fsyncDir(this.dataDir);
  }

  async setMeta(name: string, meta: BundleMeta): Promise<void> {
    await writeJsonAtomic(path.join(this.bundlesDir, name, META_FILE), meta, 0o600);
  }

  /** Removes bundles that neither pointer names and staging directories other than `keepStaging`. */
  async prune(keepStaging: ReadonlySet<string> = new Set()): Promise<string[]> {
    const keep = new Set([await this.pointer('current'), await this.pointer('previous')].filter((n): n is string => n !== null));
    const removed: string[] = [];
    for (const entry of await readdir(this.bundlesDir)) {
      if (keep.has(entry)) continue;
      await rm(path.join(this.bundlesDir, entry), { recursive: true, force: true });
      removed.push(entry);
    }
    for (const entry of await readdir(this.stagingRoot)) {
      if (keepStaging.has(entry)) continue;
      await rm(path.join(this.stagingRoot, entry), { recursive: true, force: true });
    }
    return removed;
  }

  /** Whether a path exists as a symlink or file (for tests and status). */
  async exists(p: string): Promise<boolean> {
    return lstat(p).then(
      () => true,
      () => false,
    );
  }
}
