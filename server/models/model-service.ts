// The model registry: versions (numbered per model), aliases, tags and lineage.
import { readFile } from 'node:fs/promises';
import { and, desc, eq, inArray, or, sql } from 'drizzle-orm';
import type { ArtifactStore, StagedUpload } from '../artifacts/artifact-store.ts';
import { recordAudit } from '../audit/audit-log.ts';
import { recordEvent } from '../events/event-log.ts';
import type { Db, Tx } from '../db/client.ts';
import { artifacts, modelAliases, models, modelVersions } from '../db/schema.ts';
import { Conflict, Invalid, NotFound, ServiceError } from '../errors.ts';
import { InvalidOnnxError, inspectOnnx, type TensorInfo } from '../onnx/inspect.ts';
import { checkExternalFiles, ExternalDataError, externalRefsOf } from '../onnx/external-data.ts';
import { exposeZipMapTensors } from '../onnx/zipmap.ts';
import { isTar, ModelFolderError, unpackModelFolder, type ModelFolder } from './model-folder.ts';
import { factsOf, type VersionFacts } from './version-facts.ts';
import { ALIAS_NAME, formatRef, MODEL_NAME, parseModelRef } from './model-ref.ts';

export type VersionRow = typeof modelVersions.$inferSelect;

export interface VersionView {
  ref: string;
  model: string;
  version: number;
  sha256: string;
  size: number;
  format: string;
  irVersion: number | null;
  opset: number | null;
  producer: string | null;
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  paramCount: number;
  initializerBytes: number;
  notes: string | null;
  metrics: Record<string, number>;
  tags: Record<string, string>;
  aliases: string[];
  parent: string | null;
  createdAt: string;
  createdBy: string | null;
  /** `ready`, or `rejected` (broke a budget; `statusReason` says which) — not offered for rollout unless overridden. */
  status: 'ready' | 'rejected';
  statusReason: string | null;
  override: { by: string; at: string; reason: string } | null;
  variant: string | null;
  recipe: Record<string, unknown> | null;
  evaluation: Record<string, unknown> | null;
  lineage: Record<string, unknown> | null;
  /** Weight types, tree size, existing quantization, rewrites at push (see version-facts.ts). */
  facts: VersionFacts | null;
}

/** Set at registration by server code (optimizer, training jobs); uploads leave them at their defaults. */
export type VersionExtras = Partial<Pick<VersionRow, 'status' | 'statusReason' | 'variant' | 'recipe' | 'evaluation' | 'lineage'>>;

export interface PushInput {
  name: string;
  notes?: string;
  parent?: string;
  metrics: Record<string, number>;
  tags: Record<string, string>;
  actor: string;
  extras?: VersionExtras;
  /** Runs inside the registration transaction (e.g. to copy the parent's reference profile to a variant). */
  onRegistered?: (tx: Tx, versionId: number) => Promise<void>;
}

/** Registers an uploaded model file as the model's next version; the staged file is committed or discarded. */
export async function registerVersion(db: Db, store: ArtifactStore, staged: StagedUpload, input: PushInput): Promise<VersionView> {
  try {
    if (!MODEL_NAME.test(input.name)) throw Invalid(`invalid model name "${input.name}": use lowercase letters, digits, '.', '_' or '-'`);
    let info;
    const body = await readFile(staged.tempPath);
    // A tar is the model's export folder: the .onnx plus the external data files its tensors name.
    let folder: ModelFolder | null = null;
    try {
      folder = isTar(body) ? unpackModelFolder(body) : null;
    } catch (err) {
      if (err instanceof ModelFolderError) throw new ServiceError('invalid_model', err.message, { size: staged.size });
      throw err;
    }
    const pushed = folder?.model ?? body;
    try {
      info = inspectOnnx(pushed);
    } catch (err) {
      if (err instanceof InvalidOnnxError) throw new ServiceError('invalid_model', folder ? `${folder.modelPath}: ${err.message}` : err.message, { size: staged.size });
      throw err;
    }
    const sideFiles = info.externalFiles.length > 0 ? externalFilesOf(pushed, folder) : [];
    // skl2onnx's default ZipMap output cannot be served: register the graph with the tensor exposed.
    const rewrite = info.opTypes.includes('ZipMap') ? exposeZipMapTensors(pushed) : null;
    // A raw .onnx is the staged upload itself; from a folder, the .onnx inside it is stored on its own.
    const original = folder ? await store.putBytes(pushed) : (await store.commit(staged), { sha256: staged.sha256, size: staged.size });
    let stored = original;
    let imported: VersionFacts['imported'];
    const externalData: NonNullable<VersionFacts['externalData']> = [];
    for (const f of sideFiles) externalData.push({ path: f.path, ...(await store.putBytes(f.bytes)) });
    if (rewrite) {
      info = inspectOnnx(rewrite.bytes);
      stored = await store.putBytes(rewrite.bytes);
      imported = { originalSha256: original.sha256, originalSize: original.size, rewrites: rewrite.rewrites };
    }
    try {
      const id = await db.transaction(async (tx) => {
        const parent = input.parent ? await resolveVersion(tx, input.parent) : null;
        await tx.insert(models).values({ name: input.name }).onConflictDoNothing();
        const model = (await tx.query.models.findFirst({ where: eq(models.name, input.name) }))!;
        const [{ next }] = await tx
          .select({ next: sql<number>`coalesce(max(${modelVersions.version}), 0) + 1` })
          .from(modelVersions)
          .where(eq(modelVersions.modelId, model.id));
        await tx.insert(artifacts).values({ sha256: original.sha256, size: original.size, mediaType: 'application/x-onnx' }).onConflictDoNothing();
        for (const f of externalData) await tx.insert(artifacts).values({ sha256: f.sha256, size: f.size, mediaType: 'application/octet-stream' }).onConflictDoNothing();
        if (rewrite) await tx.insert(artifacts).values({ sha256: stored.sha256, size: stored.size, mediaType: 'application/x-onnx' }).onConflictDoNothing();
        const [row] = await tx
          .insert(modelVersions)
          .values({
            modelId: model.id,
            version: next,
            artifactSha256: stored.sha256,
            size: stored.size,
            irVersion: info.irVersion,
            opset: info.opset,
            producer: info.producer,
            inputs: info.inputs,
            outputs: info.outputs,
            paramCount: info.paramCount,
            initializerBytes: info.initializerBytes,
            notes: input.notes ?? null,
            metrics: input.metrics,
            tags: input.tags,
            parentVersionId: parent?.id ?? null,
            createdBy: input.actor,
            facts: factsOf(info, imported, externalData),
            ...input.extras,
          })
          .returning({ id: modelVersions.id });
        await input.onRegistered?.(tx, row.id);
        await recordAudit(tx, input.actor, 'model.version.create', formatRef(input.name, next), {
          sha256: stored.sha256,
          size: stored.size,
          ...(imported ? { rewrittenFrom: imported.originalSha256 } : {}),
          parent: parent ? input.parent : undefined,
          variant: input.extras?.variant ?? undefined,
          status: input.extras?.status ?? undefined,
        });
        const status = input.extras?.status ?? 'ready';
        const variant = input.extras?.variant ?? undefined;
        await recordEvent(tx, 'model.version_registered', formatRef(input.name, next), { model: input.name, version: next, status, by: input.actor, ...(parent ? { parent: input.parent } : {}), ...(variant ? { variant } : {}) });
        if (status === 'rejected') await recordEvent(tx, 'model.version_rejected', formatRef(input.name, next), { model: input.name, version: next, reason: input.extras?.statusReason ?? 'it broke a budget' });
        return row.id;
      });
      return versionView(db, id);
    } catch (err) {
      await removeIfUnreferenced(db, store, original.sha256);
      for (const f of externalData) await removeIfUnreferenced(db, store, f.sha256);
      if (rewrite) await removeIfUnreferenced(db, store, stored.sha256);
      throw err;
    }
  } finally {
    await store.discard(staged);
  }
}

/** The side files the model's tensors name, checked against the pushed folder (a 422 names what is missing or short). */
function externalFilesOf(model: Uint8Array, folder: ModelFolder | null): Array<{ path: string; bytes: Uint8Array }> {
  const refs = externalRefsOf(model);
  const files = folder?.files ?? new Map<string, Uint8Array>();
  try {
    checkExternalFiles(refs, new Map([...files].map(([name, bytes]) => [name, bytes.length])));
  } catch (err) {
    if (err instanceof ExternalDataError) throw new ServiceError('invalid_model', err.message, { externalFiles: [...new Set(refs.map((r) => r.location))].sort() });
    throw err;
  }
  return [...new Set(refs.map((r) => r.location))].sort().map((p) => ({ path: p, bytes: files.get(p)! }));
}

async function removeIfUnreferenced(db: Db, store: ArtifactStore, sha256: string): Promise<void> {
  const row = await db.query.artifacts.findFirst({ where: eq(artifacts.sha256, sha256) });
  if (!row) await store.remove(sha256);
}

/** Resolves name@N / name@alias / name to a version row. */
export async function resolveVersion(tx: Tx, ref: string): Promise<VersionRow & { modelName: string }> {
  const parsed = parseModelRef(ref);
  const model = await tx.query.models.findFirst({ where: eq(models.name, parsed.name) });
  if (!model) throw NotFound(`model "${parsed.name}"`);
  const sel = parsed.selector;
  let row: VersionRow | undefined;
  if ('version' in sel) {
    row = await tx.query.modelVersions.findFirst({ where: and(eq(modelVersions.modelId, model.id), eq(modelVersions.version, sel.version)) });
  } else if ('alias' in sel) {
    const alias = await tx.query.modelAliases.findFirst({ where: and(eq(modelAliases.modelId, model.id), eq(modelAliases.alias, sel.alias)) });
    if (alias) row = await tx.query.modelVersions.findFirst({ where: eq(modelVersions.id, alias.versionId) });
  } else {
    row = await tx.query.modelVersions.findFirst({ where: eq(modelVersions.modelId, model.id), orderBy: desc(modelVersions.version) });
  }
  if (!row) throw NotFound(`model version "${ref}"`);
  return { ...row, modelName: model.name };
}

export async function versionView(db: Tx, versionId: number): Promise<VersionView> {
  const row = await db.query.modelVersions.findFirst({ where: eq(modelVersions.id, versionId) });
  if (!row) throw NotFound(`model version ${versionId}`);
  const model = (await db.query.models.findFirst({ where: eq(models.id, row.modelId) }))!;
  const aliases = await db.select({ alias: modelAliases.alias }).from(modelAliases).where(eq(modelAliases.versionId, row.id));
  const parent = row.parentVersionId ? await refOf(db, row.parentVersionId) : null;
  return toView(row, model.name, aliases.map((a) => a.alias), parent);
}

function toView(row: VersionRow, modelName: string, aliases: string[], parent: string | null): VersionView {
  return {
    ref: formatRef(modelName, row.version),
    model: modelName,
    version: row.version,
    sha256: row.artifactSha256,
    size: row.size,
    format: row.format,
    irVersion: row.irVersion,
    opset: row.opset,
    producer: row.producer,
    inputs: row.inputs as TensorInfo[],
    outputs: row.outputs as TensorInfo[],
    paramCount: row.paramCount,
    initializerBytes: row.initializerBytes,
    notes: row.notes,
    metrics: row.metrics as Record<string, number>,
    tags: row.tags as Record<string, string>,
    aliases,
    parent,
    createdAt: row.createdAt,
    createdBy: row.createdBy,
    status: row.status,
    statusReason: row.statusReason,
    override: row.override ?? null,
    variant: row.variant,
    recipe: row.recipe ?? null,
    evaluation: row.evaluation ?? null,
    lineage: row.lineage ?? null,
    facts: row.facts ?? null,
  };
}

async function refOf(db: Tx, versionId: number): Promise<string | null> {
  const [r] = await db
    .select({ name: models.name, version: modelVersions.version })
    .from(modelVersions)
    .innerJoin(models, eq(models.id, modelVersions.modelId))
    .where(eq(modelVersions.id, versionId));
  return r ? formatRef(r.name, r.version) : null;
}

/** One version with its lineage: parent and children (which may belong to other models). */
export async function showVersion(db: Db, ref: string): Promise<VersionView & { children: string[] }> {
  const row = await resolveVersion(db, ref);
  const view = await versionView(db, row.id);
  const children = await db
    .select({ name: models.name, version: modelVersions.version })
    .from(modelVersions)
    .innerJoin(models, eq(models.id, modelVersions.modelId))
    .where(eq(modelVersions.parentVersionId, row.id))
    .orderBy(models.name, modelVersions.version);
  return { ...view, children: children.map((c) => formatRef(c.name, c.version)) };
}

export async function listModels(db: Db, opts: { limit: number; offset: number }) {
  const rows = await db
    .select({
      name: models.name,
      createdAt: models.createdAt,
      versions: sql<number>`count(${modelVersions.id})`,
      latest: sql<number | null>`max(${modelVersions.version})`,
      updatedAt: sql<string | null>`max(${modelVersions.createdAt})`,
    })
    .from(models)
    .leftJoin(modelVersions, eq(modelVersions.modelId, models.id))
    .groupBy(models.id)
    .orderBy(models.name)
    .limit(opts.limit)
    .offset(opts.offset);
  const aliasRows = rows.length
    ? await db
        .select({ name: models.name, alias: modelAliases.alias, version: modelVersions.version })
        .from(modelAliases)
        .innerJoin(models, eq(models.id, modelAliases.modelId))
        .innerJoin(modelVersions, eq(modelVersions.id, modelAliases.versionId))
        .where(inArray(models.name, rows.map((r) => r.name)))
    : [];
  return rows.map((r) => ({
    ...r,
    aliases: Object.fromEntries(aliasRows.filter((a) => a.name === r.name).map((a) => [a.alias, a.version])),
  }));
}

export async function listVersions(db: Db, name: string, opts: { limit: number; offset: number }): Promise<VersionView[]> {
  const model = await db.query.models.findFirst({ where: eq(models.name, name) });
  if (!model) throw NotFound(`model "${name}"`);
  const rows = await db.query.modelVersions.findMany({
    where: eq(modelVersions.modelId, model.id),
    orderBy: desc(modelVersions.version),
    limit: opts.limit,
    offset: opts.offset,
  });
  const aliases = await db.select().from(modelAliases).where(eq(modelAliases.modelId, model.id));
  const parentIds = [...new Set(rows.map((r) => r.parentVersionId).filter((x): x is number => x != null))];
  const parents = new Map<number, string | null>();
  for (const id of parentIds) parents.set(id, await refOf(db, id));
  return rows.map((r) =>
    toView(r, name, aliases.filter((a) => a.versionId === r.id).map((a) => a.alias), r.parentVersionId ? parents.get(r.parentVersionId) ?? null : null),
  );
}

export async function setAlias(db: Db, name: string, alias: string, version: number, actor: string): Promise<VersionView> {
  if (!ALIAS_NAME.test(alias)) throw Invalid(`invalid alias "${alias}": start with a letter; letters, digits, '_' or '-'`);
  if (alias === 'latest') throw Invalid('"latest" is reserved: it always means the newest version');
  return db.transaction(async (tx) => {
    const row = await resolveVersion(tx, formatRef(name, version));
    const before = await tx
      .select({ version: modelVersions.version })
      .from(modelAliases)
      .innerJoin(modelVersions, eq(modelVersions.id, modelAliases.versionId))
      .where(and(eq(modelAliases.modelId, row.modelId), eq(modelAliases.alias, alias)));
    await tx
      .insert(modelAliases)
      .values({ modelId: row.modelId, alias, versionId: row.id })
      .onConflictDoUpdate({ target: [modelAliases.modelId, modelAliases.alias], set: { versionId: row.id, updatedAt: new Date().toISOString() } });
    await recordAudit(tx, actor, 'model.alias.set', `${name}@${alias}`, { version });
    if (before[0]?.version !== version) await recordEvent(tx, 'model.alias_moved', `${name}@${alias}`, { model: name, version, alias, from: before[0]?.version ?? null, by: actor });
    return versionView(tx, row.id);
  });
}

export async function removeAlias(db: Db, name: string, alias: string, actor: string): Promise<void> {
  await db.transaction(async (tx) => {
    const model = await tx.query.models.findFirst({ where: eq(models.name, name) });
    if (!model) throw NotFound(`model "${name}"`);
    const res = await tx
      .delete(modelAliases)
      .where(and(eq(modelAliases.modelId, model.id), eq(modelAliases.alias, alias)))
      .returning({ alias: modelAliases.alias });
    if (!res.length) throw NotFound(`alias "${name}@${alias}"`);
    await recordAudit(tx, actor, 'model.alias.remove', `${name}@${alias}`);
  });
}

export async function updateTags(db: Db, ref: string, set: Record<string, string>, remove: string[], actor: string): Promise<VersionView> {
  return db.transaction(async (tx) => {
    const row = await resolveVersion(tx, ref);
    const tags = { ...(row.tags as Record<string, string>), ...set };
    for (const k of remove) delete tags[k];
    await tx.update(modelVersions).set({ tags }).where(eq(modelVersions.id, row.id));
    await recordAudit(tx, actor, 'model.version.tag', formatRef(row.modelName, row.version), { set, remove });
    return versionView(tx, row.id);
  });
}

/** What still points at a version; deletion is refused while this is non-empty. */
export type VersionReferenceCheck = (tx: Tx, versionId: number) => Promise<string[]>;

export async function deleteVersion(db: Db, store: ArtifactStore, ref: string, actor: string, extraChecks: VersionReferenceCheck[] = []): Promise<void> {
  const removed = await db.transaction(async (tx) => {
    const row = await resolveVersion(tx, ref);
    const label = formatRef(row.modelName, row.version);
    const refs: string[] = [];
    const aliases = await tx.select().from(modelAliases).where(eq(modelAliases.versionId, row.id));
    refs.push(...aliases.map((a) => `alias ${row.modelName}@${a.alias}`));
    const children = await tx.select({ id: modelVersions.id }).from(modelVersions).where(eq(modelVersions.parentVersionId, row.id));
    for (const c of children) refs.push(`child ${await refOf(tx, c.id)}`);
    for (const check of extraChecks) refs.push(...(await check(tx, row.id)));
    if (refs.length) throw Conflict(`${label} is still referenced; remove these first`, { references: refs });
    await tx.delete(modelVersions).where(eq(modelVersions.id, row.id));
    await recordAudit(tx, actor, 'model.version.delete', label, { sha256: row.artifactSha256 });
    const removed: string[] = [];
    // The file pushed before a rewrite at import is kept with the version and goes with it.
    for (const sha of [row.artifactSha256, row.facts?.imported?.originalSha256]) {
      if (!sha) continue;
      const others = await tx
        .select({ id: modelVersions.id })
        .from(modelVersions)
        .where(or(eq(modelVersions.artifactSha256, sha), sql`json_extract(${modelVersions.facts}, '$.imported.originalSha256') = ${sha}`))
        .limit(1);
      if (others.length) continue;
      await tx.delete(artifacts).where(eq(artifacts.sha256, sha));
      removed.push(sha);
    }
    return removed;
  });
  for (const sha of removed) await store.remove(sha);
}
