// Activating, probation and rollback. Activation installs the bundle on disk atomically (the
// `current`/`previous` symlink swap) and then swaps the runtime to the staged model; probation
// watches real traffic on it; a failed probation goes back to `previous` — only while that bundle's
// signed manifest is unexpired, so a device never ends up on a bundle no valid manifest names. (An
// operator's rollback is not this: it is a new signed manifest for the older bundle.)
import type { DeploymentManifest } from '../../firmware-bundles/manifest.ts';
import type { InstalledBundle } from '../bundle-store.ts';
import type { UpdateJob } from '../desired-check.ts';
import type { StagedModel } from '../model-runtime.ts';
import { watchProbation, type ProbationVerdict } from '../probation.ts';
import { UpdateError } from '../update-error.ts';
import { recordHandled, step, verifyContext, type UpdateDeps } from './deps.ts';
import { stageAndSmoke } from './stage.ts';

/** Puts the verified bundle in place as `current`; the probation is recorded first so a restart resumes it. */
export async function installBundle(d: UpdateDeps, job: UpdateJob): Promise<void> {
  await d.state.update((s) => void (s.probation = { counter: job.manifest.counter, dir: job.name }));
  await step(d, d.bundles.install(job.name, { manifest: job.manifestEnvelope, keylist: job.keylistEnvelope }, { verifiedAt: new Date().toISOString() }), 'ACTIVATION_FAILED', 'installing the bundle');
}

/** Swaps the runtime to the staged model; if that fails, `current` goes back to the bundle still serving. */
export async function swapModel(d: UpdateDeps, staged: StagedModel): Promise<void> {
  try {
    await step(d, d.runtime.activate(staged), 'ACTIVATION_FAILED', 'swapping the model');
  } catch (err) {
    await d.bundles.revert().catch((e) => d.logger.error({ err: e }, 'could not restore the previous pointer'));
    throw err;
  }
}

/** Reports `probation` and watches the new model serve until a verdict (or the signal). */
export async function watchNewBundle(d: UpdateDeps, m: DeploymentManifest, signal: AbortSignal): Promise<ProbationVerdict> {
  const { config } = d;
  await d.reporter.transition('probation', { counter: m.counter, bundleId: m.bundle.id });
  return watchProbation(
    d.runtime,
    m.counter,
    { durationMs: config.probationMs, requests: config.probationRequests, minRequests: config.probationMinRequests, maxErrorRate: config.probationMaxErrorRate },
    signal,
  );
}

/** Acts on a probation verdict: `active` and prune the old bundles, or roll back to `previous`. */
export async function settleProbation(
  d: UpdateDeps,
  m: DeploymentManifest,
  digest: string,
  verdict: ProbationVerdict,
  hooks: { keep: () => Set<string>; setActive: (b: InstalledBundle) => void },
): Promise<void> {
  const { reporter, logger, state, bundles } = d;
  const ids = { counter: m.counter, bundleId: m.bundle.id };
  if (verdict.interrupted) return;
  if (verdict.ok) {
    // One write: the verdict, the probation's end and the `active` transition.
    state.note((s) => {
      s.probation = null;
      recordHandled(s, digest, m.counter, 'active');
    });
    await reporter.transition('active', ids);
    const removed = await bundles.prune(hooks.keep());
    logger.info({ counter: m.counter, removed, verdict: verdict.message }, 'probation passed');
    return;
  }
  logger.error({ counter: m.counter, verdict: verdict.message }, 'probation failed; rolling back');
  // Judged first: if the agent dies mid-rollback, the redelivered manifest is not tried again.
  await state.update((s) => recordHandled(s, digest, m.counter, 'PROBATION_FAILED'));
  try {
    await rollbackToPrevious(d, hooks.setActive);
    await reporter.transition('rolled_back', { ...ids, reason: 'PROBATION_FAILED', message: verdict.message });
  } catch (err) {
    await state.update((s) => void (s.probation = null));
    await reporter.transition('failed', { ...ids, reason: 'PROBATION_FAILED', message: `${verdict.message}; rollback impossible: ${(err as Error).message}` });
  }
}

/** Re-verifies the previous bundle, stages and smoke-tests it, then points `current` at it and swaps. */
export async function rollbackToPrevious(d: UpdateDeps, setActive: (b: InstalledBundle) => void): Promise<InstalledBundle> {
  const { bundles, runtime, state } = d;
  const prevName = await bundles.pointer('previous');
  if (!prevName) throw new UpdateError('NO_PREVIOUS', 'there is no previous bundle to roll back to');
  const prev = await bundles.verifyInstalled(prevName, verifyContext(d));
  if (Date.parse(prev.manifest.expiresAt) <= Date.now()) {
    throw new UpdateError('EXPIRED', `the previous bundle's manifest expired at ${prev.manifest.expiresAt}`);
  }
  const staged = await stageAndSmoke(d, prev);
  try {
    await bundles.revert();
  } catch (err) {
    await runtime.discard(staged).catch(() => {});
    throw err;
  }
  await runtime.activate(staged);
  setActive(prev);
  await state.update((s) => void (s.probation = null));
  return prev;
}
