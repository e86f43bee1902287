// /api/v1/jobs: list, show, logs and cancel (bearer API tokens), plus the endpoints an external
// training pipeline calls with the job's one-time token: download the snapshot and the parent model,
// upload the trained model (which continues the job).
import { Readable } from 'node:stream';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { eq } from 'drizzle-orm';
import type { MiddlewareHandler } from 'hono';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import type { Db } from '../db/client.ts';
import { getDatasetVersion } from '../datasets/dataset-service.ts';
import { datasets, datasetVersions, modelVersions } from '../db/schema.ts';
import { Invalid, NotFound, Unauthorized } from '../errors.ts';
import type { AppEnv } from '../http/app-env.ts';
import { actorOf, authenticate, requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { ErrorResponse, errorResponses, json, Pagination } from '../http/schemas.ts';
import { cancelJob, getJob, listJobLogs, listJobs } from './job-service.ts';
import type { JobRunner } from './job-runner.ts';
import { datasetDownload } from './snapshot.ts';

const Job = z
  .object({
    id: z.string(),
    model: z.string(),
    status: z.enum(['queued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled']),
    trigger: z.object({ kind: z.enum(['cron', 'drift', 'manual']), alertId: z.string().optional(), cohort: z.string().optional(), by: z.string().optional() }),
    trainer: z.record(z.string(), z.unknown()),
    parent: z.string().nullable(),
    dataset: z.string().nullable(),
    result: z.string().nullable(),
    rollout: z.string().nullable(),
    attempt: z.number(),
    maxAttempts: z.number(),
    timeoutS: z.number(),
    runner: z.string().nullable(),
    heartbeatAt: z.string().nullable(),
    metrics: z.record(z.string(), z.unknown()).nullable(),
    error: z.string().nullable(),
    cancelRequested: z.boolean(),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    finishedAt: z.string().nullable(),
  })
  .openapi('Job');
const LogLine = z.object({ id: z.number(), at: z.string(), stream: z.enum(['stdout', 'stderr', 'runner']), line: z.string() });
const IdParam = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) });
const KeyValue = z.string().regex(/^[^=]+=.*$/, 'expected key=value');

export interface JobRoutesDeps {
  db: Db;
  store: ArtifactStore;
  runner: JobRunner;
  maxUploadBytes: number;
}

function bearer(c: { req: { header(name: string): string | undefined } }): string {
  const m = /^Bearer\s+(\S+)$/i.exec(c.req.header('authorization') ?? '');
  if (!m) throw Unauthorized('missing bearer token: the pipeline sends the job token it was given');
  return m[1];
}

export function jobRoutes(deps: JobRoutesDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  // The pipeline's endpoints authenticate with the job token; everything else with an API token.
  const pipeline = /^\/[^/]+\/(result|dataset|parent-model)$/;
  const apiAuth = authenticate(deps.db);
  const role = requireRole('models:write');
  const guard: MiddlewareHandler<AppEnv> = async (c, next) => {
    const sub = c.req.path.slice(c.req.path.indexOf('/jobs') + '/jobs'.length);
    if (pipeline.test(sub)) return next();
    await apiAuth(c, async () => {
      await role(c, next);
    });
  };
  app.use('*', guard);
  return app
    .openapi(
      createRoute({
        method: 'get',
        path: '/',
        summary: 'List training jobs, newest first',
        request: { query: z.object({ model: z.string().optional(), status: z.enum(['queued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled']).optional(), ...Pagination.shape }) },
        responses: { 200: json(z.object({ jobs: z.array(Job) }), 'Jobs'), ...errorResponses },
      }),
      async (c) => c.json({ jobs: await listJobs(deps.db, c.req.valid('query')) }, 200),
    )
    .openapi(
      createRoute({ method: 'get', path: '/{id}', summary: 'Show a job', request: { params: IdParam }, responses: { 200: json(Job, 'Job'), ...errorResponses } }),
      async (c) => c.json(await getJob(deps.db, c.req.valid('param').id), 200),
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/{id}/logs',
        summary: "A job's log lines (trainer stdout/stderr and the runner's steps), oldest first; `after` pages on",
        request: { params: IdParam, query: z.object({ after: z.coerce.number().int().min(0).optional(), limit: z.coerce.number().int().min(1).max(5000).default(1000) }) },
        responses: { 200: json(z.object({ lines: z.array(LogLine) }), 'Log lines'), ...errorResponses },
      }),
      async (c) => c.json({ lines: await listJobLogs(deps.db, c.req.valid('param').id, c.req.valid('query')) }, 200),
    )
    .openapi(
      createRoute({
        method: 'post',
        path: '/{id}/cancel',
        summary: 'Cancel a job (a running trainer is killed at its next heartbeat)',
        request: { params: IdParam },
        responses: { 200: json(Job, 'Job'), ...errorResponses },
      }),
      async (c) => c.json(await cancelJob(deps.db, c.req.valid('param').id, actorOf(c)), 200),
    )
    .openapi(
      createRoute({
        method: 'post',
        path: '/{id}/result',
        summary: "The external pipeline's trained model (raw ONNX body, Bearer = the job token); continues the job",
        security: [],
        request: {
          params: IdParam,
          query: z.object({ metric: z.union([KeyValue, z.array(KeyValue)]).optional() }),
          body: { content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } }, required: true },
        },
        responses: { 200: json(Job, 'The job after publishing the result'), 413: json(ErrorResponse, 'Too large'), 422: json(ErrorResponse, 'Not a valid ONNX model'), ...errorResponses },
      }),
      async (c) => {
        const { id } = c.req.valid('param');
        const token = bearer(c);
        await deps.runner.jobForToken(id, token); // refuse before reading a possibly large body
        const metrics: Record<string, number> = {};
        const raw = c.req.valid('query').metric;
        for (const kv of raw === undefined ? [] : Array.isArray(raw) ? raw : [raw]) {
          const i = kv.indexOf('=');
          const n = Number(kv.slice(i + 1));
          if (!Number.isFinite(n)) throw Invalid(`metric "${kv.slice(0, i)}" must be a number`);
          metrics[kv.slice(0, i)] = n;
        }
        const body = c.req.raw.body;
        if (!body) throw Invalid('empty body: send the ONNX file as the request body');
        const staged = await deps.store.stage(Readable.fromWeb(body as import('node:stream/web').ReadableStream), { maxBytes: deps.maxUploadBytes });
        return c.json(await deps.runner.acceptUpload(id, token, staged, metrics), 200);
      },
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/{id}/dataset',
        summary: "The job's training snapshot (CSV / JSON lines, or a tar of images + labels.csv); Bearer = the job token",
        security: [],
        request: { params: IdParam },
        responses: { 200: { description: 'The snapshot' }, ...errorResponses },
      }),
      async (c) => {
        const job = await deps.runner.jobForToken(c.req.valid('param').id, bearer(c));
        if (!job.datasetVersionId) throw NotFound(`snapshot of job ${job.id}`);
        const [r] = await deps.db
          .select({ name: datasets.name, version: datasetVersions.version })
          .from(datasetVersions)
          .innerJoin(datasets, eq(datasets.id, datasetVersions.datasetId))
          .where(eq(datasetVersions.id, job.datasetVersionId));
        const d = await datasetDownload(deps.db, deps.store, await getDatasetVersion(deps.db, `${r.name}@${r.version}`));
        return c.body(d.bytes as unknown as ArrayBuffer, 200, { 'content-type': d.contentType, 'content-disposition': `attachment; filename="${d.filename}"` });
      },
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/{id}/parent-model',
        summary: "The ONNX of the job's parent version (for fine-tuning); Bearer = the job token",
        security: [],
        request: { params: IdParam },
        responses: { 200: { description: 'ONNX' }, ...errorResponses },
      }),
      async (c) => {
        const job = await deps.runner.jobForToken(c.req.valid('param').id, bearer(c));
        const v = job.parentVersionId ? await deps.db.query.modelVersions.findFirst({ where: eq(modelVersions.id, job.parentVersionId) }) : undefined;
        if (!v) throw NotFound(`parent model of job ${job.id}`);
        const stream = Readable.toWeb(deps.store.readStream(v.artifactSha256)) as unknown as ReadableStream;
        return c.body(stream, 200, { 'content-type': 'application/octet-stream', 'content-length': String(v.size) });
      },
    );
}
