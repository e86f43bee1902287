// /api/v1/bundles: build a bundle from a model version and a definition; list and show bundles.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import type { Db } from '../db/client.ts';
import type { AppEnv } from '../http/app-env.ts';
import { actorOf, requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { ErrorResponse, errorResponses, json, Pagination } from '../http/schemas.ts';
import { buildAndStoreBundle, getBundle, listBundles } from './bundle-service.ts';

const FileRef = z.object({ path: z.string(), sha256: z.string(), size: z.number() });
export const Bundle = z
  .object({
    id: z.string(),
    name: z.string(),
    model: z.string(),
    modelName: z.string(),
    modelVersion: z.number(),
    files: z.array(FileRef),
    minAgentVersion: z.string(),
    definition: z.unknown(),
    createdAt: z.string(),
    createdBy: z.string().nullable(),
  })
  .openapi('Bundle');

export function bundleRoutes(deps: { db: Db; store: ArtifactStore }) {
  const { db } = deps;
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('models:write'));
  return app
    .openapi(
      createRoute({
        method: 'post',
        path: '/',
        summary: 'Build a bundle: validate the definition against the model, record smoke vectors, store the files',
        request: {
          body: {
            content: {
              'application/json': {
                schema: z.object({
                  model: z.string().optional().openapi({ description: 'model@N or model@alias; defaults to the definition\'s "model"' }),
                  definition: z.record(z.string(), z.unknown()),
                  labels: z.array(z.string()).max(100_000).optional(),
                }),
              },
            },
          },
        },
        responses: { 201: json(Bundle, 'Built'), 422: json(ErrorResponse, 'The definition does not fit the model'), ...errorResponses },
      }),
      async (c) => {
        const body = c.req.valid('json');
        return c.json(await buildAndStoreBundle(db, deps.store, { modelRef: body.model, definition: body.definition, labels: body.labels, actor: actorOf(c) }), 201);
      },
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/',
        summary: 'List bundles, newest first',
        request: { query: z.object({ name: z.string().optional(), ...Pagination.shape }) },
        responses: { 200: json(z.object({ bundles: z.array(Bundle) }), 'Bundles'), ...errorResponses },
      }),
      async (c) => c.json({ bundles: await listBundles(db, c.req.valid('query')) }, 200),
    )
    .openapi(
      createRoute({ method: 'get', path: '/{id}', summary: 'Show a bundle', request: { params: z.object({ id: z.string() }) }, responses: { 200: json(Bundle, 'Bundle'), ...errorResponses } }),
      async (c) => c.json(await getBundle(db, c.req.valid('param').id), 200),
    );
}
