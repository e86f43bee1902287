// Verifying and staging: the downloaded files as they sit on disk and the bundle definition are
// checked, then the model is loaded beside the active one and must reproduce its smoke vectors.
// Installed bundles go through the same staging at start and before a rollback.
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { BundleDefinition } from '../../firmware-bundles/definition.ts';
import { verifyFile } from '../../firmware-bundles/file-digest.ts';
import type { DeploymentManifest } from '../../firmware-bundles/manifest.ts';
import { runSmokeVectors } from '../../firmware-bundles/smoke.ts';
import { decodeSmokeFile } from '../../firmware-bundles/smoke-file.ts';
import { createHash } from 'node:crypto';
import { compareVersions } from '../../firmware-bundles/semver.ts';
import type { InstalledBundle } from '../bundle-store.ts';
import type { BundleInfo, StagedModel } from '../model-runtime.ts';
import { UpdateError } from '../update-error.ts';
import { step, type UpdateDeps } from './deps.ts';

export function bundleInfoOf(b: InstalledBundle): BundleInfo {
  return { id: b.manifest.bundle.id, name: b.manifest.bundle.name, model: b.manifest.bundle.model, counter: b.manifest.counter, modelSha256: b.modelSha256 };
}

/** The labels of a bundle still in staging (not installed yet). */
export function manifestBundleInfo(m: DeploymentManifest): BundleInfo {
  return { id: m.bundle.id, name: m.bundle.name, model: m.bundle.model, counter: m.counter, modelSha256: m.files.find((f) => f.path === 'model.onnx')!.sha256 };
}

/** Checks every downloaded file against the manifest and returns the bundle definition, if this agent can run it. */
export async function verifyDownloadedBundle(dir: string, m: Pick<DeploymentManifest, 'files'>, agentVersion: string): Promise<BundleDefinition> {
  for (const file of m.files) {
    const r = await verifyFile(path.join(dir, file.path), file);
    if (!r.ok) throw new UpdateError(r.reason, `${file.path}: ${r.message}`);
  }
  let definition: BundleDefinition;
  try {
    const parsed = BundleDefinition.safeParse(JSON.parse(await readFile(path.join(dir, 'bundle.json'), 'utf8')));
    if (!parsed.success) throw new Error(parsed.error.issues[0].message);
    definition = parsed.data;
  } catch (err) {
    throw new UpdateError('INVALID_BUNDLE', `bundle.json: ${(err as Error).message}`);
  }
  if (compareVersions(agentVersion, definition.minAgentVersion) < 0) {
    throw new UpdateError('AGENT_TOO_OLD', `bundle needs agent ${definition.minAgentVersion}, this is ${agentVersion}`);
  }
  return definition;
}

/** Loads the model beside the active one and runs the smoke vectors on that session; discards it on failure. */
export async function stageAndSmoke(d: UpdateDeps, b: { modelPath: string; definition: BundleDefinition; info?: BundleInfo } | InstalledBundle, signal?: AbortSignal): Promise<StagedModel> {
  const { runtime, logger } = d;
  const info = 'info' in b && b.info ? b.info : bundleInfoOf(b as InstalledBundle);
  const staged = await step(d, runtime.stage(b.modelPath, b.definition, info), 'MODEL_LOAD_FAILED', 'loading the model', signal, (s) => runtime.discard(s));
  try {
    const vectors = await smokeVectorsOf(b.modelPath, b.definition);
    if (vectors.length === 0) logger.warn({ counter: info.counter }, 'bundle has no smoke vectors; only the load was checked');
    const r = await step(d, runSmokeVectors(staged.run, vectors, b.definition.smoke.tolerance), 'SMOKE_TEST_FAILED', 'running the smoke vectors', signal);
    if (!r.ok) throw new UpdateError('SMOKE_TEST_FAILED', r.failures.slice(0, 3).map((f) => f.message).join('; '));
    return staged;
  } catch (err) {
    await runtime.discard(staged).catch(() => {});
    throw err;
  }
}

/** The bundle's smoke vectors: inline, or from its `smoke.bin` (signed in the manifest, named by hash in bundle.json). */
export async function smokeVectorsOf(modelPath: string, definition: BundleDefinition): Promise<BundleDefinition['smoke']['vectors']> {
  const file = definition.smoke.file;
  if (!file) return definition.smoke.vectors;
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path.join(path.dirname(modelPath), file.path));
  } catch (err) {
    throw new UpdateError('INVALID_BUNDLE', `${file.path}: ${(err as Error).message}`);
  }
  if (createHash('sha256').update(bytes).digest('hex') !== file.sha256) throw new UpdateError('INVALID_BUNDLE', `${file.path} is not the file bundle.json names`);
  try {
    return decodeSmokeFile(bytes);
  } catch (err) {
    throw new UpdateError('INVALID_BUNDLE', (err as Error).message);
  }
}
