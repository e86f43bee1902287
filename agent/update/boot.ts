// Boot: serve the newest installed bundle that still verifies: `current`, else `previous` (and
// repair the pointer).
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { BundleError, type InstalledBundle } from '../bundle-store.ts';
import { manifestDigest } from '../desired-check.ts';
import { verifyContext, type UpdateDeps } from './deps.ts';
import { stageAndSmoke } from './stage.ts';

/** Verifies, stages and activates the first installed bundle that passes; null if none does (or none is installed). */
export async function bootInstalledBundle(d: UpdateDeps, setActive: (b: InstalledBundle) => void): Promise<InstalledBundle | null> {
  const { bundles, state, reporter, logger } = d;
  const current = await bundles.pointer('current');
  const previous = await bundles.pointer('previous');
  const candidates = [current, previous].filter((n, i, all): n is string => n !== null && all.indexOf(n) === i);
  let active: InstalledBundle | null = null;
  let firstFailure: BundleError | null = null;
  for (const name of candidates) {
    try {
      const b = await bundles.verifyInstalled(name, verifyContext(d));
      const staged = await stageAndSmoke(d, b);
      await d.runtime.activate(staged);
      setActive(b);
      active = b;
      if (name !== current) {
        await bundles.setCurrent(name);
        await bundles.clearPrevious();
        logger.error({ broken: current, fallback: name, reason: firstFailure?.code }, 'current bundle is broken; fell back to the previous one');
        await reporter.transition('rolled_back', { counter: b.manifest.counter, bundleId: b.manifest.bundle.id, reason: firstFailure?.code ?? 'INVALID_BUNDLE', message: `current bundle ${current} failed verification at start: ${firstFailure?.message ?? 'unknown'}` });
      }
      break;
    } catch (err) {
      const e = err instanceof BundleError ? err : new BundleError((err as { code?: string }).code ?? 'INVALID_BUNDLE', (err as Error).message);
      firstFailure ??= e;
      logger.error({ bundle: name, code: e.code, err: e.message }, 'installed bundle failed verification');
    }
  }
  if (current && active?.name !== current) {
    // The desired state most likely still names the broken bundle: let it be installed again.
    const brokenDigest = await manifestDigestOf(d, current);
    if (brokenDigest) await state.update((st) => void (st.reinstall = brokenDigest));
  }
  if (!active && firstFailure) {
    await bundles.setCurrent(null);
    await reporter.transition('failed', { reason: firstFailure.code, message: `no installed bundle verifies: ${firstFailure.message}` });
  }
  return active;
}

async function manifestDigestOf(d: UpdateDeps, name: string): Promise<string | null> {
  try {
    return manifestDigest(JSON.parse(await readFile(path.join(d.bundles.bundlesDir, name, 'manifest.json'), 'utf8')).signed);
  } catch {
    return null;
  }
}
