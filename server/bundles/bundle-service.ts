// Bundles: a model version plus its resolved definition, built on the server (smoke vectors recorded
// with onnxruntime) into content-addressed files that deployment manifests name by hash and size.
import { readFile } from 'node:fs/promises';
import { and, desc, eq } from 'drizzle-orm';
import { BundleBuildError, buildBundle } from '../../firmware-bundles/builder.ts';
import type { BundleDefinition } from '../../firmware-bundles/definition.ts';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import { recordAudit } from '../audit/audit-log.ts';
import { randomId } from '../auth/secrets.ts';
import type { Db, Tx } from '../db/client.ts';
import { artifacts, bundles, models, modelVersions } from '../db/schema.ts';
import { referenceForBundle } from '../drift/reference-service.ts';
import { Invalid, NotFound, ServiceError } from '../errors.ts';
import { formatRef } from '../models/model-ref.ts';
import { resolveVersion } from '../models/model-service.ts';
import { assertRollable } from '../models/version-status.ts';

export type BundleRow = typeof bundles.$inferSelect;

export interface BundleView {
  id: string;
  name: string;
  model: string;
  modelName: string;
  modelVersion: number;
  files: Array<{ path: string; sha256: string; size: number }>;
  minAgentVersion: string;
  definition: unknown;
  createdAt: string;
  createdBy: string | null;
}

export async function buildAndStoreBundle(
  db: Db,
  store: ArtifactStore,
  input: { modelRef?: string; definition: unknown; labels?: string[]; actor: string },
): Promise<BundleView> {
  const def = input.definition as Partial<BundleDefinition>;
  const ref = input.modelRef ?? def?.model;
  if (!ref) throw Invalid('name the model version to bundle (model@N), in the request or the definition\'s "model" field');
  const version = await resolveVersion(db, ref);
  assertRollable(version, formatRef(version.modelName, version.version));
  const modelBytes = await readFile(store.pathOf(version.artifactSha256));
  // Weights in ONNX external data files ship beside model.onnx, each named and hashed in the manifest like it.
  const externalFiles = await Promise.all((version.facts?.externalData ?? []).map(async (f) => ({ path: f.path, bytes: new Uint8Array(await readFile(store.pathOf(f.sha256))) })));
  // Devices sketch on the version's reference layout: ship it unless the definition brings its own bins.
  const reference = def.reference?.bins && Object.keys(def.reference.bins).length ? def.reference : { ...def.reference, ...((await referenceForBundle(db, version.id)) ?? { bins: {} }) };
  let built;
  try {
    built = await buildBundle({ definition: { ...def, reference, model: formatRef(version.modelName, version.version) } as BundleDefinition, modelBytes, labels: input.labels, externalFiles });
  } catch (err) {
    if (err instanceof BundleBuildError) throw new ServiceError('invalid_bundle', err.message, { reason: err.code });
    throw err;
  }
  for (const f of built.files) {
    if (f.path !== 'model.onnx' && !externalFiles.some((e) => e.path === f.path)) await store.putBytes(f.bytes);
  }
  const id = randomId('bnd', 8);
  await db.transaction(async (tx) => {
    for (const f of built.files) {
      await tx.insert(artifacts).values({ sha256: f.sha256, size: f.size, mediaType: f.path.endsWith('.json') ? 'application/json' : f.path.endsWith('.onnx') ? 'application/x-onnx' : 'application/octet-stream' }).onConflictDoNothing();
    }
    await tx.insert(bundles).values({
      id,
      name: built.resolved.name,
      modelVersionId: version.id,
      definition: built.resolved,
      files: built.files.map(({ path, sha256, size }) => ({ path, sha256, size })),
      minAgentVersion: built.resolved.minAgentVersion,
      createdBy: input.actor,
    });
    await recordAudit(tx, input.actor, 'bundle.build', id, { name: built.resolved.name, model: formatRef(version.modelName, version.version) });
  });
  return getBundle(db, id);
}

export async function getBundle(db: Tx, id: string): Promise<BundleView> {
  const row = await db.query.bundles.findFirst({ where: eq(bundles.id, id) });
  if (!row) throw NotFound(`bundle "${id}"`);
  return toView(db, row);
}

async function toView(db: Tx, row: BundleRow): Promise<BundleView> {
  const [mv] = await db
    .select({ name: models.name, version: modelVersions.version })
    .from(modelVersions)
    .innerJoin(models, eq(models.id, modelVersions.modelId))
    .where(eq(modelVersions.id, row.modelVersionId));
  return {
    id: row.id,
    name: row.name,
    model: formatRef(mv.name, mv.version),
    modelName: mv.name,
    modelVersion: mv.version,
    files: row.files,
    minAgentVersion: row.minAgentVersion,
    definition: row.definition,
    createdAt: row.createdAt,
    createdBy: row.createdBy,
  };
}

export async function listBundles(db: Db, filter: { name?: string; limit: number; offset?: number }): Promise<BundleView[]> {
  const rows = await db.select().from(bundles).where(filter.name ? eq(bundles.name, filter.name) : undefined).orderBy(desc(bundles.createdAt)).limit(filter.limit)
    .offset(filter.offset ?? 0);
  return Promise.all(rows.map((r) => toView(db, r)));
}

/**
 * What `deploy` accepts: a bundle id (`bnd_…`), a bundle name (its newest build), or a model ref
 * (`model@N` / `model@alias`: the newest bundle built from that version).
 */
export async function resolveBundle(db: Tx, ref: string): Promise<BundleRow> {
  if (ref.startsWith('bnd_')) {
    const row = await db.query.bundles.findFirst({ where: eq(bundles.id, ref) });
    if (!row) throw NotFound(`bundle "${ref}"`);
    return row;
  }
  if (!ref.includes('@')) {
    const row = await db.query.bundles.findFirst({ where: eq(bundles.name, ref), orderBy: desc(bundles.createdAt) });
    if (row) return row;
  }
  const version = await resolveVersion(db, ref);
  const row = await db.query.bundles.findFirst({ where: and(eq(bundles.modelVersionId, version.id)), orderBy: desc(bundles.createdAt) });
  if (!row) throw NotFound(`bundle for ${formatRef(version.modelName, version.version)}`, { hint: `build one with \`flotilla bundles build ${formatRef(version.modelName, version.version)} --def <dir>\`` });
  return row;
}

/** Version deletion is refused while a bundle was built from it. */
export async function bundlesReferencingVersion(tx: Tx, versionId: number): Promise<string[]> {
  const rows = await tx.select({ id: bundles.id }).from(bundles).where(eq(bundles.modelVersionId, versionId));
  return rows.map((r) => `bundle ${r.id}`);
}
