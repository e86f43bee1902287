// /api/v1/models: push versions (streamed upload), list, show with lineage, aliases, tags, delete.
import { Readable } from 'node:stream';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import type { Db } from '../db/client.ts';
import { Invalid, ServiceError } from '../errors.ts';
import type { AppEnv } from '../http/app-env.ts';
import { actorOf, requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { ErrorResponse, errorResponses, json, Pagination } from '../http/schemas.ts';
import {
  deleteVersion,
  listModels,
  listVersions,
  registerVersion,
  removeAlias,
  setAlias,
  showVersion,
  updateTags,
  type VersionReferenceCheck,
} from './model-service.ts';
import { BudgetsInput, getBudgets, setBudgets } from './budgets.ts';
import { formatRef } from './model-ref.ts';
import { overrideRejection } from './version-status.ts';

const TensorInfo = z.object({ name: z.string(), dtype: z.string(), shape: z.array(z.union([z.number(), z.string(), z.null()])) });
const Version = z
  .object({
    ref: z.string(),
    model: z.string(),
    version: z.number(),
    sha256: z.string(),
    size: z.number(),
    format: z.string(),
    irVersion: z.number().nullable(),
    opset: z.number().nullable(),
    producer: z.string().nullable(),
    inputs: z.array(TensorInfo),
    outputs: z.array(TensorInfo),
    paramCount: z.number(),
    initializerBytes: z.number(),
    notes: z.string().nullable(),
    metrics: z.record(z.string(), z.number()),
    tags: z.record(z.string(), z.string()),
    aliases: z.array(z.string()),
    parent: z.string().nullable(),
    createdAt: z.string(),
    createdBy: z.string().nullable(),
    status: z.enum(['ready', 'rejected']),
    statusReason: z.string().nullable(),
    override: z.object({ by: z.string(), at: z.string(), reason: z.string() }).nullable(),
    variant: z.string().nullable(),
    recipe: z.record(z.string(), z.unknown()).nullable(),
    evaluation: z.record(z.string(), z.unknown()).nullable(),
    lineage: z.record(z.string(), z.unknown()).nullable(),
    facts: z.record(z.string(), z.unknown()).nullable().openapi({ description: 'weight types, tree ensemble size (trees, nodes, leaves), existing quantization, rewrites made at push (imported)' }),
  })
  .openapi('ModelVersion');
const VersionDetail = Version.extend({ children: z.array(z.string()) }).openapi('ModelVersionDetail');
const ModelSummary = z
  .object({
    name: z.string(),
    createdAt: z.string(),
    versions: z.number(),
    latest: z.number().nullable(),
    updatedAt: z.string().nullable(),
    aliases: z.record(z.string(), z.number()),
  })
  .openapi('ModelSummary');

const Budgets = z
  .object({ model: z.string(), custom: z.record(z.string(), z.number()), effective: z.record(z.string(), z.number()) })
  .openapi('ModelBudgets');
const BudgetKeys = z.enum(['maxAccuracyDrop', 'minAgreement', 'maxRmseIncrease', 'maxAccuracyGap', 'maxDemographicParityDifference', 'maxEqualOpportunityDifference']);

const NameParam = z.object({ name: z.string().openapi({ param: { name: 'name', in: 'path' } }) });
const RefParam = NameParam.extend({ ref: z.string().openapi({ param: { name: 'ref', in: 'path' }, description: 'version number or alias' }) });
const AliasParam = NameParam.extend({ alias: z.string().openapi({ param: { name: 'alias', in: 'path' } }) });

const KeyValue = z.string().regex(/^[^=]+=.*$/, 'expected key=value');
const PushQuery = z.object({
  notes: z.string().max(4000).optional(),
  parent: z.string().optional(),
  metric: z.union([KeyValue, z.array(KeyValue)]).optional(),
  tag: z.union([KeyValue, z.array(KeyValue)]).optional(),
});

function pairs(v: string | string[] | undefined): Array<[string, string]> {
  return (v === undefined ? [] : Array.isArray(v) ? v : [v]).map((kv) => {
    const i = kv.indexOf('=');
    return [kv.slice(0, i).trim(), kv.slice(i + 1).trim()];
  });
}

function metricsOf(v: string | string[] | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, raw] of pairs(v)) {
    const n = Number(raw);
    if (raw === '' || !Number.isFinite(n)) throw Invalid(`metric "${k}" must be a number, got "${raw}"`);
    out[k] = n;
  }
  return out;
}

export interface ModelRoutesDeps {
  db: Db;
  store: ArtifactStore;
  maxUploadBytes: number;
  /** Other parts (bundles, deployments) register what may reference a version. */
  versionReferenceChecks: VersionReferenceCheck[];
}

const refOf = (name: string, ref: string) => (/^[0-9]+$/.test(ref) ? formatRef(name, Number(ref)) : `${name}@${ref}`);

export function modelRoutes(deps: ModelRoutesDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('models:write'));
  return app
    .openapi(
      createRoute({
        method: 'get',
        path: '/',
        summary: 'List models',
        request: { query: Pagination },
        responses: { 200: json(z.object({ models: z.array(ModelSummary) }), 'Models'), ...errorResponses },
      }),
      async (c) => c.json({ models: await listModels(deps.db, c.req.valid('query')) }, 200),
    )
    .openapi(
      createRoute({
        method: 'post',
        path: '/{name}/versions',
        summary: 'Upload a new version (raw ONNX bytes as the body, streamed)',
        request: {
          params: NameParam,
          query: PushQuery,
          body: { content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } }, required: true },
        },
        responses: {
          201: json(Version, 'Registered version'),
          413: json(ErrorResponse, 'Upload over the size limit'),
          422: json(ErrorResponse, 'Not a valid ONNX model'),
          ...errorResponses,
        },
      }),
      async (c) => {
        const { name } = c.req.valid('param');
        const q = c.req.valid('query');
        const metrics = metricsOf(q.metric);
        const tags = Object.fromEntries(pairs(q.tag));
        const declared = c.req.header('content-length');
        const expectedSize = declared !== undefined ? Number(declared) : undefined;
        if (expectedSize !== undefined && expectedSize > deps.maxUploadBytes) {
          throw new ServiceError('payload_too_large', `upload of ${expectedSize} bytes exceeds the limit of ${deps.maxUploadBytes} bytes`, {
            maxBytes: deps.maxUploadBytes,
          });
        }
        const body = c.req.raw.body;
        if (!body) throw Invalid('empty body: send the ONNX file as the request body');
        const staged = await deps.store.stage(Readable.fromWeb(body as import('node:stream/web').ReadableStream), {
          maxBytes: deps.maxUploadBytes,
          expectedSize,
        });
        if (staged.size === 0) {
          await deps.store.discard(staged);
          throw Invalid('empty body: send the ONNX file as the request body');
        }
        const view = await registerVersion(deps.db, deps.store, staged, { name, notes: q.notes, parent: q.parent, metrics, tags, actor: actorOf(c) });
        return c.json(view, 201);
      },
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/{name}/versions',
        summary: 'List versions of a model, newest first',
        request: { params: NameParam, query: Pagination },
        responses: { 200: json(z.object({ versions: z.array(Version) }), 'Versions'), ...errorResponses },
      }),
      async (c) => c.json({ versions: await listVersions(deps.db, c.req.valid('param').name, c.req.valid('query')) }, 200),
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/{name}/versions/{ref}',
        summary: 'Show a version (number, alias or "latest") with its lineage',
        request: { params: RefParam },
        responses: { 200: json(VersionDetail, 'Version'), ...errorResponses },
      }),
      async (c) => {
        const { name, ref } = c.req.valid('param');
        return c.json(await showVersion(deps.db, refOf(name, ref)), 200);
      },
    )
    .openapi(
      createRoute({
        method: 'delete',
        path: '/{name}/versions/{ref}',
        summary: 'Delete a version (refused while anything references it)',
        request: { params: RefParam },
        responses: { 204: { description: 'Deleted' }, ...errorResponses },
      }),
      async (c) => {
        const { name, ref } = c.req.valid('param');
        await deleteVersion(deps.db, deps.store, refOf(name, ref), actorOf(c), deps.versionReferenceChecks);
        return c.body(null, 204);
      },
    )
    .openapi(
      createRoute({
        method: 'patch',
        path: '/{name}/versions/{ref}/tags',
        summary: 'Set or remove tags on a version',
        request: {
          params: RefParam,
          body: { content: { 'application/json': { schema: z.object({ set: z.record(z.string().min(1), z.string()).default({}), remove: z.array(z.string()).default([]) }) } } },
        },
        responses: { 200: json(Version, 'Updated version'), ...errorResponses },
      }),
      async (c) => {
        const { name, ref } = c.req.valid('param');
        const body = c.req.valid('json');
        return c.json(await updateTags(deps.db, refOf(name, ref), body.set, body.remove, actorOf(c)), 200);
      },
    )
    .openapi(
      createRoute({
        method: 'put',
        path: '/{name}/aliases/{alias}',
        summary: 'Point an alias (e.g. champion) at a version',
        request: { params: AliasParam, body: { content: { 'application/json': { schema: z.object({ version: z.number().int().positive() }) } } } },
        responses: { 200: json(Version, 'Aliased version'), ...errorResponses },
      }),
      async (c) => {
        const { name, alias } = c.req.valid('param');
        return c.json(await setAlias(deps.db, name, alias, c.req.valid('json').version, actorOf(c)), 200);
      },
    )
    .openapi(
      createRoute({
        method: 'delete',
        path: '/{name}/aliases/{alias}',
        summary: 'Remove an alias',
        request: { params: AliasParam },
        responses: { 204: { description: 'Removed' }, ...errorResponses },
      }),
      async (c) => {
        const { name, alias } = c.req.valid('param');
        await removeAlias(deps.db, name, alias, actorOf(c));
        return c.body(null, 204);
      },
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/{name}/budgets',
        summary: 'The quality and fairness budgets new versions and variants are gated on (set values and the effective ones)',
        request: { params: NameParam },
        responses: { 200: json(Budgets, 'Budgets'), ...errorResponses },
      }),
      async (c) => c.json(await getBudgets(deps.db, c.req.valid('param').name), 200),
    )
    .openapi(
      createRoute({
        method: 'put',
        path: '/{name}/budgets',
        summary: 'Set budgets (fractions: 0.01 = one point); `reset` returns fields to their defaults',
        request: {
          params: NameParam,
          body: { content: { 'application/json': { schema: BudgetsInput.extend({ reset: z.array(BudgetKeys).default([]) }) } } },
        },
        responses: { 200: json(Budgets, 'Stored budgets'), ...errorResponses },
      }),
      async (c) => {
        const { reset, ...set } = c.req.valid('json');
        return c.json(await setBudgets(deps.db, c.req.valid('param').name, set, reset, actorOf(c)), 200);
      },
    )
    .openapi(
      createRoute({
        method: 'post',
        path: '/{name}/versions/{ref}/override',
        summary: 'Admin only: let a rejected version roll out anyway (audited, with the reason)',
        middleware: [requireRole('admin')] as const,
        request: { params: RefParam, body: { content: { 'application/json': { schema: z.object({ reason: z.string().trim().min(3).max(2000) }) } } } },
        responses: { 200: json(Version, 'The overridden version'), ...errorResponses },
      }),
      async (c) => {
        const { name, ref } = c.req.valid('param');
        return c.json(await overrideRejection(deps.db, refOf(name, ref), c.req.valid('json').reason, actorOf(c)), 200);
      },
    );
}
