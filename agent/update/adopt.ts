// A manifest for the files already serving (the server re-signed it: key rotation, expiry refresh,
// new agent settings): nothing to download, stage or watch. The new envelopes replace the old ones
// on disk (so a restart boots with them) and the new counter becomes the floor.
import type { DeploymentManifest } from '../../firmware-bundles/manifest.ts';
import type { InstalledBundle } from '../bundle-store.ts';
import type { UpdateJob } from '../desired-check.ts';
import { recordHandled, type UpdateDeps } from './deps.ts';
import { bundleInfoOf } from './stage.ts';

/** Same files, byte for byte (path, size, sha256): a manifest that changes nothing but its signature and settings. */
export function sameFiles(a: DeploymentManifest, b: DeploymentManifest): boolean {
  const key = (m: DeploymentManifest) => m.files.map((f) => `${f.path}\u0000${f.size}\u0000${f.sha256}`).sort().join('\n');
  return key(a) === key(b);
}

/** Hard-links the serving files into `job.name` beside the new envelopes, moves `current` there and relabels the runtime. */
export async function relinkServingBundle(d: UpdateDeps, job: UpdateJob, from: InstalledBundle): Promise<InstalledBundle> {
  await d.bundles.adopt(from.name, job.name, { manifest: job.manifestEnvelope, keylist: job.keylistEnvelope }, { verifiedAt: new Date().toISOString(), ...(from.activatedAt ? { activatedAt: from.activatedAt } : {}) });
  const b = await d.bundles.read(job.name);
  d.runtime.relabel(bundleInfoOf(b));
  return b;
}

/** Raises the floor to the adopted counter, records the verdict and reports `active`. */
export async function recordAdoption(d: UpdateDeps, job: UpdateJob): Promise<void> {
  const m = job.manifest;
  // Written with the `active` transition (one write).
  d.state.note((s) => {
    s.highWaterCounter = Math.max(s.highWaterCounter, m.counter);
    recordHandled(s, job.digest, m.counter, 'active');
  });
  await d.reporter.transition('active', { counter: m.counter, bundleId: m.bundle.id });
  d.logger.info({ counter: m.counter, bundle: job.name }, 're-signed manifest for the serving bundle adopted (no download)');
}
