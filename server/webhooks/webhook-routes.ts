// /api/v1/webhooks (admin): subscriptions (URL, secret, event filter), a test ping, each one's delivery log.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Db } from '../db/client.ts';
import type { AppEnv } from '../http/app-env.ts';
import { actorOf, authenticate, requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json, Pagination } from '../http/schemas.ts';
import type { KeyCipher } from '../keys/key-cipher.ts';
import { WEBHOOK_EVENTS, WEBHOOK_KINDS } from './webhook-events.ts';
import { createSubscription, getSubscription, listSubscriptions, pingSubscription, removeSubscription, subscriptionDeliveries } from './subscription-service.ts';

const Subscription = z
  .object({ id: z.string(), url: z.string(), events: z.array(z.string()), description: z.string().nullable(), createdAt: z.string(), createdBy: z.string().nullable() })
  .openapi('WebhookSubscription');

const Delivery = z
  .object({
    id: z.string().openapi({ description: 'sent as x-flotilla-delivery, the same on every attempt' }),
    event: z.string(),
    status: z.enum(['pending', 'delivered', 'failed']),
    attempts: z.number(),
    nextAttemptAt: z.string(),
    lastError: z.string().nullable(),
    createdAt: z.string(),
    deliveredAt: z.string().nullable(),
  })
  .openapi('WebhookDelivery');

const IdParam = z.object({ id: z.string().max(64).openapi({ param: { name: 'id', in: 'path' } }) });

const EVENTS_HELP = `event types (${WEBHOOK_EVENTS.join(', ')}), kind patterns (${WEBHOOK_KINDS.map((k) => `${k}.*`).join(', ')}), \`*\`, or the aliases rollout.started and job.finished`;

export function webhookRoutes(deps: { db: Db; cipher: KeyCipher; wake(): void }) {
  const { db } = deps;
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  // Mounted outside app.ts' PROTECTED list, so it authenticates itself; URLs and logs are admin business.
  app.use('*', authenticate(db), requireRole('admin', 'admin'));
  return app
    .openapi(
      createRoute({
        method: 'post',
        path: '/',
        summary: 'Subscribe a URL to events (signed with the secret: x-flotilla-signature = sha256 HMAC of the body)',
        description: `events: ${EVENTS_HELP}. Without a secret one is generated; the secret is returned only here. Only events after the subscription's creation are delivered.`,
        request: {
          body: {
            content: {
              'application/json': {
                schema: z.object({
                  url: z.string().min(1).max(2048),
                  events: z.array(z.string().max(64)).max(64).openapi({ description: EVENTS_HELP, example: ['rollout.*', 'alert.opened'] }),
                  secret: z.string().min(16).max(256).optional().openapi({ description: 'HMAC secret (at least 16 characters); generated when omitted' }),
                  description: z.string().max(500).optional(),
                }),
              },
            },
          },
        },
        responses: { 201: json(Subscription.extend({ secret: z.string() }), 'Subscribed'), ...errorResponses },
      }),
      async (c) => c.json(await createSubscription(db, deps.cipher, { ...c.req.valid('json'), actor: actorOf(c) }), 201),
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/',
        summary: 'List webhook subscriptions, newest first',
        request: { query: Pagination },
        responses: { 200: json(z.object({ webhooks: z.array(Subscription) }), 'Subscriptions'), ...errorResponses },
      }),
      async (c) => c.json({ webhooks: await listSubscriptions(db, c.req.valid('query')) }, 200),
    )
    .openapi(
      createRoute({ method: 'get', path: '/{id}', summary: 'One webhook subscription', request: { params: IdParam }, responses: { 200: json(Subscription, 'Subscription'), ...errorResponses } }),
      async (c) => c.json(await getSubscription(db, c.req.valid('param').id), 200),
    )
    .openapi(
      createRoute({ method: 'delete', path: '/{id}', summary: 'Remove a webhook subscription and its delivery log', request: { params: IdParam }, responses: { 204: { description: 'Removed' }, ...errorResponses } }),
      async (c) => {
        await removeSubscription(db, c.req.valid('param').id, actorOf(c));
        return c.body(null, 204);
      },
    )
    .openapi(
      createRoute({
        method: 'post',
        path: '/{id}/test',
        summary: 'Send a `ping` event to the subscription through the outbox (signed, retried like any event)',
        request: { params: IdParam },
        responses: { 202: json(z.object({ deliveryId: z.string() }), 'Queued'), ...errorResponses },
      }),
      async (c) => {
        const r = await pingSubscription(db, c.req.valid('param').id, actorOf(c));
        deps.wake();
        return c.json(r, 202);
      },
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/{id}/deliveries',
        summary: "A subscription's delivery log, newest first",
        request: { params: IdParam, query: z.object({ status: z.enum(['pending', 'delivered', 'failed']).optional(), ...Pagination.shape }) },
        responses: { 200: json(z.object({ deliveries: z.array(Delivery) }), 'Deliveries'), ...errorResponses },
      }),
      async (c) => c.json({ deliveries: await subscriptionDeliveries(db, c.req.valid('param').id, c.req.valid('query')) }, 200),
    );
}
