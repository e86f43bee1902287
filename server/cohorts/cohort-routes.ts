// /api/v1/cohorts: named label selectors and their current members.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Db } from '../db/client.ts';
import { Device } from '../devices/device-routes.ts';
import type { AppEnv } from '../http/app-env.ts';
import { actorOf, requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json, page, Pagination } from '../http/schemas.ts';
import { cohortMembers, createCohort, deleteCohort, listCohorts, updateCohort, withMemberCounts } from './cohort-service.ts';

const Cohort = z
  .object({ id: z.number(), name: z.string(), selector: z.string(), description: z.string().nullable(), createdAt: z.string(), preferVariant: z.string().nullable() })
  .openapi('Cohort');
const NameParam = z.object({ name: z.string().openapi({ param: { name: 'name', in: 'path' } }) });

export function cohortRoutes(db: Db) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('devices:write'));
  return app
    .openapi(
      createRoute({
        method: 'post',
        path: '/',
        summary: 'Create a cohort from a label selector',
        request: { body: { content: { 'application/json': { schema: z.object({ name: z.string(), selector: z.string().max(4096), description: z.string().max(1000).optional() }) } } } },
        responses: { 201: json(Cohort, 'Created'), ...errorResponses },
      }),
      async (c) => c.json(await createCohort(db, { ...c.req.valid('json'), actor: actorOf(c) }), 201),
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/',
        summary: 'List cohorts',
        request: {
          query: Pagination.extend({
            members: z.enum(['count']).optional().openapi({ description: 'count: each cohort with memberCount, its approved devices now (a read of every device\'s labels)' }),
          }),
        },
        responses: { 200: json(z.object({ cohorts: z.array(Cohort.extend({ memberCount: z.number().int().optional() })) }), 'Cohorts'), ...errorResponses },
      }),
      async (c) => {
        const q = c.req.valid('query');
        const listed = page(await listCohorts(db), q);
        return c.json({ cohorts: q.members === 'count' ? await withMemberCounts(db, listed) : listed }, 200);
      },
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/{name}',
        summary: 'Show a cohort and its current members',
        request: { params: NameParam },
        responses: { 200: json(z.object({ cohort: Cohort, members: z.array(Device) }), 'Cohort'), ...errorResponses },
      }),
      async (c) => c.json(await cohortMembers(db, c.req.valid('param').name), 200),
    )
    .openapi(
      createRoute({
        method: 'patch',
        path: '/{name}',
        summary: 'Change a cohort\'s selector, description or preferred variant (null: none)',
        request: {
          params: NameParam,
          body: {
            content: {
              'application/json': {
                schema: z.object({ selector: z.string().max(4096).optional(), description: z.string().max(1000).optional(), preferVariant: z.string().max(32).nullable().optional() }),
              },
            },
          },
        },
        responses: { 200: json(Cohort, 'Updated'), ...errorResponses },
      }),
      async (c) => c.json(await updateCohort(db, c.req.valid('param').name, c.req.valid('json'), actorOf(c)), 200),
    )
    .openapi(
      createRoute({ method: 'delete', path: '/{name}', summary: 'Delete a cohort', request: { params: NameParam }, responses: { 204: { description: 'Deleted' }, ...errorResponses } }),
      async (c) => {
        await deleteCohort(db, c.req.valid('param').name, actorOf(c));
        return c.body(null, 204);
      },
    );
}
