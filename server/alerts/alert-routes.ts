// /api/v1/alerts: drift alerts, newest first; /alerts/deliveries: the alert webhook's outbox (operator and up).
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Db } from '../db/client.ts';
import type { AppEnv } from '../http/app-env.ts';
import { allows } from '../auth/roles.ts';
import { Forbidden } from '../errors.ts';
import { requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json, Pagination } from '../http/schemas.ts';
import { listAlerts } from './alert-service.ts';
import { listDeliveries } from './deliveries.ts';

const Alert = z
  .object({
    id: z.string(),
    kind: z.literal('drift'),
    model: z.string(),
    cohort: z.string(),
    status: z.enum(['open', 'closed']),
    feature: z.string(),
    score: z.number().nullable(),
    threshold: z.number(),
    features: z.array(z.object({ feature: z.string(), kind: z.enum(['input', 'output']), method: z.string(), score: z.number().nullable(), threshold: z.number() })),
    window: z.object({ start: z.string(), end: z.string() }),
    openedAt: z.string(),
    updatedAt: z.string(),
    closedAt: z.string().nullable(),
  })
  .openapi('Alert');

const Delivery = z
  .object({
    id: z.string(),
    event: z.string(),
    status: z.enum(['pending', 'delivered', 'failed']),
    attempts: z.number().int(),
    nextAttemptAt: z.string(),
    lastError: z.string().nullable(),
    createdAt: z.string(),
    deliveredAt: z.string().nullable(),
    alertId: z.string().nullable(),
  })
  .openapi('WebhookDelivery');

export function alertRoutes(db: Db) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('models:write'));
  // Delivery errors may name the receiver's internals: operators, ML engineers and admins, not viewers.
  app.use('/deliveries', async (c, next) => {
    const { role } = c.get('principal');
    if (!allows(role, 'devices:write') && !allows(role, 'models:write')) throw Forbidden(`role "${role}" may not read webhook deliveries`, { role, needed: 'operator' });
    await next();
  });
  return app
    .openapi(
      createRoute({
        method: 'get',
        path: '/deliveries',
        summary: 'Alert webhook deliveries, newest first (pending, delivered, failed)',
        request: { query: z.object({ status: z.enum(['pending', 'delivered', 'failed']).optional(), ...Pagination.shape }) },
        responses: { 200: json(z.object({ deliveries: z.array(Delivery) }), 'Deliveries'), ...errorResponses },
      }),
      async (c) => c.json({ deliveries: await listDeliveries(db, c.req.valid('query')) }, 200),
    )
    .openapi(
    createRoute({
      method: 'get',
      path: '/',
      summary: 'List alerts, newest first',
      request: { query: z.object({ status: z.enum(['open', 'closed']).optional(), ...Pagination.shape }) },
      responses: { 200: json(z.object({ alerts: z.array(Alert) }), 'Alerts'), ...errorResponses },
    }),
    async (c) => c.json({ alerts: await listAlerts(db, c.req.valid('query')) }, 200),
  );
}
