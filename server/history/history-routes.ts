// GET /api/v1/history: what served when, per device, cohort or model, optionally at one point in time.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Db } from '../db/client.ts';
import type { AppEnv } from '../http/app-env.ts';
import { requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json, Pagination } from '../http/schemas.ts';
import { servingHistoryOf } from './serving-history.ts';

const Interval = z
  .object({
    deviceId: z.string(),
    deviceName: z.string().nullable(),
    bundleId: z.string(),
    model: z.string(),
    version: z.number().int(),
    counter: z.number().int(),
    cohort: z.string().nullable().openapi({ description: 'the cohort of the deployment or rollout that gave the bundle' }),
    deploymentId: z.string().nullable(),
    via: z.string().openapi({ description: 'deployment, rollback (a signed device rollback), rollout, agent-rollback (probation failed on the device), unknown' }),
    startedBy: z.string().nullable().openapi({ description: 'who started that deployment or rollout' }),
    from: z.string(),
    to: z.string().nullable().openapi({ description: 'null: serving now' }),
    activatedAt: z.string().nullable().openapi({ description: "the device's own activation time (its clock)" }),
    lastFailure: z.object({ code: z.string(), message: z.string(), at: z.string(), bundleId: z.string().optional() }).nullable().openapi({ description: 'the latest failed attempt to replace this bundle while it served' }),
  })
  .openapi('ServingInterval');

const Query = z.object({
  device: z.string().min(1).max(128).optional(),
  cohort: z.string().min(1).max(64).optional(),
  model: z.string().min(1).max(128).optional(),
  at: z.string().datetime({ offset: true }).optional().openapi({ description: 'ISO 8601 time: only what served at that moment, with a per-bundle summary' }),
  ...Pagination.shape,
});

export function historyRoutes(db: Db) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('read'));
  return app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      summary: 'What served when: serving intervals (device, bundle, model version, from, to, deployment or rollout, who started it), newest first',
      description: 'Filter by device, cohort (its devices now and every interval a deployment to it started) and/or model; `at` keeps the intervals that served at that moment and adds `serving`, the devices per bundle then.',
      request: { query: Query },
      responses: {
        200: json(z.object({ intervals: z.array(Interval), serving: z.array(z.object({ model: z.string(), version: z.number(), bundleId: z.string(), devices: z.number() })).optional() }), 'History'),
        ...errorResponses,
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      // Normalised to UTC with milliseconds, the form every stored time has, so text comparison orders correctly.
      const at = q.at ? new Date(q.at).toISOString() : undefined;
      return c.json(await servingHistoryOf(db, { ...q, at }), 200);
    },
  );
}
