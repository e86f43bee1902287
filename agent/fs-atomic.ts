// Crash-safe file writes: write a temp file in the same directory, fsync it, rename it over the
// target, fsync the directory. After a kill -9 (or power loss on a journaling filesystem) a reader
// sees either the old or the new content, never a torn file.
import { randomBytes } from 'node:crypto';
import { open, rename, rm, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';

/** fsyncs a directory so a rename/create inside it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsyncs one file by path. */
export async function fsyncFile(file: string): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function tempName(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Atomically replaces `target` with `data` (mode applies to the new file, default 0600). */
export async function writeFileAtomic(target: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = tempName(target);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(path.dirname(target));
}

/** Atomically points the symlink `link` at `target` (a relative target keeps the data dir movable). */
export async function replaceSymlink(link: string, target: string): Promise<void> {
  const tmp = tempName(link);
  await symlink(target, tmp);
  try {
    await rename(tmp, link);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fsyncDir(path.dirname(link));
}

/** Writes JSON atomically (pretty, trailing newline). */
export async function writeJsonAtomic(target: string, value: unknown, mode = 0o600): Promise<void> {
  await writeFileAtomic(target, JSON.stringify(value, null, 2) + '\n', mode);
}
