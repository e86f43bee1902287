// /api/v1/predictions, /api/v1/labels, /api/v1/performance. Predictions may come from an external
// system (bearer token with models:write) or from a device itself (HTTP Basic deviceId:secret, as for
// artifact downloads; it may only log its own predictions).
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import type { DeviceAuthenticator } from '../artifacts/device-auth.ts';
import type { Db } from '../db/client.ts';
import { Forbidden, ServiceError } from '../errors.ts';
import type { AppEnv } from '../http/app-env.ts';
import { actorOf, authenticate, requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json } from '../http/schemas.ts';
import { checkBuckets, Duration, durationSeconds } from '../http/bounds.ts';
import { performance, recordLabels, recordPredictions } from './ground-truth-service.ts';

type Env = AppEnv & { Variables: { device?: string } };

const Id = z.string().min(1).max(200);
const Value = z.union([z.string().max(1000), z.number()]);
const Prediction = z.object({
  predictionId: Id,
  deviceId: z.string().optional(),
  model: z.string().openapi({ example: 'churn@3' }),
  predicted: Value,
  at: z.iso.datetime({ offset: true }),
});
const Bucket = z.object({ start: z.string(), end: z.string(), predictions: z.number(), labeled: z.number(), correct: z.number(), accuracy: z.number().nullable() });
const PerformanceView = z
  .object({
    model: z.string(),
    cohort: z.string().nullable(),
    metric: z.literal('accuracy'),
    window: z.object({ start: z.string(), end: z.string(), seconds: z.number() }),
    bucketSeconds: z.number(),
    predictions: z.number(),
    labeled: z.number(),
    correct: z.number(),
    accuracy: z.number().nullable(),
    buckets: z.array(Bucket),
  })
  .openapi('Performance');

/** Basic deviceId:secret → the device; anything else → a bearer token with models:write. */
function deviceOrToken(db: Db, deviceAuth: DeviceAuthenticator): MiddlewareHandler<Env> {
  const bearer = authenticate(db);
  const role = requireRole('models:write');
  return async (c, next) => {
    const basic = /^Basic\s+(\S+)$/i.exec(c.req.header('authorization') ?? '');
    if (!basic) {
      await bearer(c, async () => {
        await role(c, next);
      });
      return;
    }
    const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i <= 0 || !(await deviceAuth.check(decoded.slice(0, i), decoded.slice(i + 1)))) throw new ServiceError('unauthorized', 'unknown device or wrong secret');
    c.set('device', decoded.slice(0, i));
    await next();
  };
}

export function groundTruthRoutes(deps: { db: Db; deviceAuth: DeviceAuthenticator }) {
  const { db } = deps;
  const app = new OpenAPIHono<Env>({ defaultHook: validationHook });
  app.use('/predictions', deviceOrToken(db, deps.deviceAuth));
  app.use('/labels', requireRole('models:write'));
  app.use('/performance', requireRole('models:write'));
  return app
    .openapi(
      createRoute({
        method: 'post',
        path: '/predictions',
        summary: 'Log predictions (batch) so labels can be matched to them later',
        request: { body: { content: { 'application/json': { schema: z.array(Prediction).min(1).max(10_000) } }, required: true } },
        responses: {
          200: json(z.object({ accepted: z.number(), duplicates: z.number(), rejected: z.array(z.object({ predictionId: z.string(), reason: z.string() })) }), 'Recorded'),
          ...errorResponses,
        },
      }),
      async (c) => {
        let items = c.req.valid('json');
        const device = c.get('device');
        if (device) {
          if (items.some((p) => p.deviceId && p.deviceId !== device)) throw Forbidden('a device may only log its own predictions');
          items = items.map((p) => ({ ...p, deviceId: device }));
        }
        return c.json(await recordPredictions(db, items, device ? `device ${device}` : actorOf(c)), 200);
      },
    )
    .openapi(
      createRoute({
        method: 'post',
        path: '/labels',
        summary: 'Ground truth for logged predictions (may arrive before the prediction; a later label replaces an earlier one)',
        request: { body: { content: { 'application/json': { schema: z.array(z.object({ predictionId: Id, label: Value })).min(1).max(10_000) } }, required: true } },
        responses: { 200: json(z.object({ stored: z.number(), matched: z.number() }), 'Stored'), ...errorResponses },
      }),
      async (c) => c.json(await recordLabels(db, c.req.valid('json'), actorOf(c)), 200),
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/performance',
        summary: 'Task metric (accuracy) of a model version per time bucket, optionally for one cohort',
        request: {
          query: z.object({
            model: z.string(),
            cohort: z.string().optional(),
            window: Duration.optional(),
            bucket: Duration.optional().openapi({ example: '5m' }),
            end: z.iso.datetime({ offset: true }).optional(),
          }),
        },
        responses: { 200: json(PerformanceView, 'Accuracy per bucket'), ...errorResponses },
      }),
      async (c) => {
        const q = c.req.valid('query');
        const windowS = durationSeconds(q.window, 3600);
        const bucketS = q.bucket === undefined ? undefined : durationSeconds(q.bucket, 0);
        if (bucketS !== undefined) checkBuckets(windowS, bucketS);
        return c.json(await performance(db, { model: q.model, cohort: q.cohort, windowS, bucketS, end: q.end ? new Date(q.end) : undefined }), 200);
      },
    );
}
