// /api/v1/fleet: the whole fleet in one answer for the console (devices, cohorts, running versions,
// last failure, per-device telemetry over a window).
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Db } from '../db/client.ts';
import { Invalid } from '../errors.ts';
import type { AppEnv } from '../http/app-env.ts';
import { authenticate, requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json } from '../http/schemas.ts';
import { parseWindowSeconds } from '../ingest/buckets.ts';
import { fleetOverview } from './fleet-service.ts';

const FleetDevice = z
  .object({
    id: z.string(),
    name: z.string().nullable(),
    status: z.enum(['pending', 'approved', 'revoked']),
    labels: z.record(z.string(), z.string()),
    online: z.boolean(),
    lastSeen: z.string().nullable(),
    enrolledAt: z.string(),
    cohorts: z.array(z.string()),
    active: z.object({ bundleId: z.string(), bundleName: z.string(), model: z.string(), version: z.number() }).nullable(),
    desired: z.object({ bundleId: z.string(), model: z.string().nullable(), version: z.number().nullable(), cohort: z.string().nullable(), deploymentId: z.string().nullable() }).nullable(),
    updateState: z.string().nullable(),
    lastError: z.object({ code: z.string(), message: z.string(), at: z.string() }).nullable(),
    telemetry: z.object({ ratePerSecond: z.number().nullable(), errorRatio: z.number().nullable(), p95: z.number().nullable() }),
  })
  .openapi('FleetDevice');

export function fleetRoutes(db: Db) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  // Mounted outside app.ts' PROTECTED list, so it authenticates itself.
  app.use('*', authenticate(db), requireRole('devices:write'));
  return app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      summary: 'Every device with its cohorts, running and desired version, last update failure and telemetry (rate, error ratio, p95) over a window (default 15m)',
      request: {
        query: z.object({
          window: z.string().optional().openapi({ example: '15m' }),
          telemetry: z
            .enum(['true', 'false'])
            .optional()
            .openapi({ description: 'false: every device\'s telemetry is null and the telemetry rollups are not read (for pages that show membership and versions only). Default true.' }),
        }),
      },
      responses: {
        200: json(z.object({ window: z.object({ start: z.string(), end: z.string(), seconds: z.number() }), devices: z.array(FleetDevice) }), 'The fleet'),
        ...errorResponses,
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const windowS = q.window === undefined ? 900 : parseWindowSeconds(q.window);
      if (windowS === null) throw Invalid(`invalid window "${q.window}": use e.g. 5m, 15m, 1h`);
      return c.json(await fleetOverview(db, windowS, new Date(), { telemetry: q.telemetry !== 'false' }), 200);
    },
  );
}
