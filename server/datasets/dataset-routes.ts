// /api/v1/datasets: push versions (streamed upload of CSV, JSON lines or a tar of images with a
// labels.csv), list, show, download.
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { stream } from 'hono/streaming';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import type { Db } from '../db/client.ts';
import { Invalid, ServiceError } from '../errors.ts';
import type { AppEnv } from '../http/app-env.ts';
import { actorOf, requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { ErrorResponse, errorResponses, json, page, Pagination } from '../http/schemas.ts';
import { createDatasetVersion, datasetMediaType, getDatasetVersion, listDatasets, listDatasetVersions, MAX_DATASET_BYTES } from './dataset-service.ts';
import type { DatasetFormat } from './formats.ts';

const Column = z.object({
  name: z.string(),
  type: z.enum(['numeric', 'categorical', 'image', 'tensor']),
  role: z.enum(['feature', 'label', 'group', 'id', 'output']),
  values: z.array(z.string()).optional(),
  dtype: z.string().optional(),
  dims: z.array(z.number()).optional(),
});
export const DatasetVersion = z
  .object({
    ref: z.string(),
    name: z.string(),
    version: z.number(),
    kind: z.enum(['tabular', 'images', 'tensors']),
    format: z.string(),
    sha256: z.string(),
    size: z.number(),
    rows: z.number(),
    columns: z.array(Column),
    source: z.record(z.string(), z.unknown()),
    createdAt: z.string(),
    createdBy: z.string().nullable(),
  })
  .openapi('DatasetVersion');
const DatasetSummary = z
  .object({ name: z.string(), description: z.string().nullable(), createdAt: z.string(), versions: z.number(), latest: z.number().nullable(), updatedAt: z.string().nullable() })
  .openapi('Dataset');

const NameParam = z.object({ name: z.string().openapi({ param: { name: 'name', in: 'path' } }) });
const VersionParam = NameParam.extend({ version: z.string().openapi({ param: { name: 'version', in: 'path' }, description: 'version number or "latest"' }) });
const PushQuery = z.object({
  format: z
    .enum(['csv', 'jsonl', 'tar', 'npy', 'npz', 'tensors'])
    .optional()
    .openapi({ description: 'default: from the content type (text/csv, application/x-ndjson, application/x-tar); npy / npz (numpy) and tensors (JSON lines of named tensors) are tensor datasets' }),
  label: z.string().optional(),
  group: z.union([z.string(), z.array(z.string())]).optional(),
  id: z.string().optional(),
  description: z.string().max(1000).optional(),
  file: z.string().max(500).optional().openapi({ description: 'the uploaded file name, kept in the version\'s source' }),
});

const FORMAT_OF_TYPE: Record<string, DatasetFormat> = { 'text/csv': 'csv', 'application/x-ndjson': 'jsonl', 'application/jsonl': 'jsonl', 'application/x-tar': 'tar' };
const refOf = (name: string, version: string) => (version === 'latest' ? name : `${name}@${version}`);

export function datasetRoutes(deps: { db: Db; store: ArtifactStore; maxUploadBytes: number }) {
  const { db, store } = deps;
  const maxBytes = Math.min(deps.maxUploadBytes, MAX_DATASET_BYTES);
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('models:write'));
  return app
    .openapi(
      createRoute({
        method: 'post',
        path: '/{name}/versions',
        summary: 'Push a dataset version (streamed body): CSV or JSON lines (tabular), or a tar of images with labels.csv',
        description:
          'Identical content to an existing version of the name answers that version (200) instead of creating one (201). ' +
          'Roles: `label` (default: a column named label), `group` (repeatable: fairness slices), `id`; the other columns are features.',
        request: {
          params: NameParam,
          query: PushQuery,
          body: { content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } }, required: true },
        },
        responses: {
          200: json(z.object({ created: z.literal(false), version: DatasetVersion }), 'Identical content: the existing version'),
          201: json(z.object({ created: z.literal(true), version: DatasetVersion }), 'New version'),
          413: json(ErrorResponse, 'Over the size limit'),
          ...errorResponses,
        },
      }),
      async (c) => {
        const { name } = c.req.valid('param');
        const q = c.req.valid('query');
        const type = (c.req.header('content-type') ?? '').split(';')[0].trim().toLowerCase();
        const format = q.format ?? FORMAT_OF_TYPE[type];
        if (!format) throw Invalid('say what the body is: ?format=csv|jsonl|tar|npy|npz|tensors, or a content type text/csv, application/x-ndjson or application/x-tar');
        const declared = c.req.header('content-length');
        const expectedSize = declared !== undefined ? Number(declared) : undefined;
        if (expectedSize !== undefined && expectedSize > maxBytes) {
          throw new ServiceError('payload_too_large', `dataset of ${expectedSize} bytes exceeds the limit of ${maxBytes} bytes`, { maxBytes });
        }
        const body = c.req.raw.body;
        if (!body) throw Invalid('the dataset is empty');
        const staged = await store.stage(Readable.fromWeb(body as import('node:stream/web').ReadableStream), { maxBytes, expectedSize });
        try {
          const bytes = new Uint8Array(await readFile(staged.tempPath));
          const groups = q.group === undefined ? undefined : Array.isArray(q.group) ? q.group : q.group.split(',').filter(Boolean);
          const res = await createDatasetVersion(db, store, {
            name,
            bytes,
            format,
            label: q.label,
            groups,
            id: q.id,
            description: q.description,
            source: { kind: 'upload', ...(q.file ? { file: q.file } : {}), sha256: staged.sha256 },
            actor: actorOf(c),
          });
          return res.created ? c.json({ created: true as const, version: res.version }, 201) : c.json({ created: false as const, version: res.version }, 200);
        } finally {
          await store.discard(staged);
        }
      },
    )
    .openapi(
      createRoute({ method: 'get', path: '/', summary: 'List datasets', request: { query: Pagination }, responses: { 200: json(z.object({ datasets: z.array(DatasetSummary) }), 'Datasets'), ...errorResponses } }),
      async (c) => c.json({ datasets: page(await listDatasets(db), c.req.valid('query')) }, 200),
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/{name}/versions',
        summary: 'List the versions of a dataset, newest first',
        request: { params: NameParam, query: Pagination },
        responses: { 200: json(z.object({ versions: z.array(DatasetVersion) }), 'Versions'), ...errorResponses },
      }),
      async (c) => c.json({ versions: page(await listDatasetVersions(db, c.req.valid('param').name), c.req.valid('query')) }, 200),
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/{name}/versions/{version}',
        summary: 'Show a dataset version (columns with types and roles, source)',
        request: { params: VersionParam },
        responses: { 200: json(DatasetVersion, 'Version'), ...errorResponses },
      }),
      async (c) => {
        const { name, version } = c.req.valid('param');
        const { id: _id, ...view } = await getDatasetVersion(db, refOf(name, version));
        return c.json(view, 200);
      },
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/{name}/versions/{version}/content',
        summary: 'Download the stored content: the CSV / JSON lines file, or the manifest of an image set (images: /artifacts/sha256/<hex>)',
        request: { params: VersionParam },
        responses: { 200: { description: 'The stored file' }, ...errorResponses },
      }),
      async (c) => {
        const { name, version } = c.req.valid('param');
        const v = await getDatasetVersion(db, refOf(name, version));
        c.header('content-type', datasetMediaType(v.kind, v.format));
        c.header('content-length', String(v.size));
        c.header('content-disposition', `attachment; filename="${v.name}-${v.version}.${v.kind === 'images' ? 'json' : v.format === 'tensors' ? 'jsonl' : v.format}"`);
        return stream(c, async (s) => {
          for await (const chunk of store.readStream(v.sha256)) await s.write(chunk as Uint8Array);
        });
      },
    );
}
