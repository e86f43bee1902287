// POST /api/v1/devices/{id}/samples (the device itself, HTTP Basic deviceId:secret, like artifact
// downloads) and GET /api/v1/samples (ML engineers: samples are raw device inputs).
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { MAX_SAMPLE_BATCH_BYTES, SampleBatch } from '../../protocol/messages/samples.ts';
import type { DeviceAuthenticator } from '../artifacts/device-auth.ts';
import type { Db } from '../db/client.ts';
import { Forbidden, Invalid, ServiceError } from '../errors.ts';
import type { AppEnv } from '../http/app-env.ts';
import { requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json, Pagination } from '../http/schemas.ts';
import { SampleRateLimit } from './sample-rate-limit.ts';
import { listSamples, RateLimited, storeSamples } from './sample-service.ts';

const SampleView = z
  .object({
    id: z.number(),
    deviceId: z.string(),
    model: z.string(),
    sampleId: z.string(),
    predictionId: z.string().nullable(),
    at: z.string(),
    receivedAt: z.string(),
    inputs: z.record(z.string(), z.unknown()),
    outputs: z.record(z.string(), z.unknown()),
    label: z.string().nullable(),
  })
  .openapi('CapturedSample');

/** Device uploads; mounted before the bearer-token middleware of /devices, since devices have no token. */
export function sampleUploadRoutes(deps: { db: Db; deviceAuth: DeviceAuthenticator }) {
  const { db, deviceAuth } = deps;
  const limit = new SampleRateLimit();
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use(
    '/:id/samples',
    bodyLimit({ maxSize: MAX_SAMPLE_BATCH_BYTES, onError: () => { throw new ServiceError('payload_too_large', `sample batch over ${MAX_SAMPLE_BATCH_BYTES} bytes`); } }),
  );
  return app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/samples',
      summary: 'Upload captured samples (device HTTP Basic auth; only while its settings enable capture)',
      request: {
        params: z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) }),
        body: { content: { 'application/json': { schema: z.record(z.string(), z.unknown()).openapi({ description: 'protocol/messages/samples.ts SampleBatch' }) } }, required: true },
      },
      responses: {
        200: json(z.object({ accepted: z.number(), duplicates: z.number() }), 'Stored (a resent sample counts as a duplicate)'),
        ...errorResponses,
        429: json(z.object({ error: z.object({ code: z.string(), message: z.string() }) }), 'Over the rate cap; see Retry-After'),
      },
    }),
    async (c) => {
      const device = await deviceAuth.fromHeader(c.req.header('authorization'));
      if (!device) throw new ServiceError('unauthorized', 'unknown device or wrong secret (HTTP Basic deviceId:secret)');
      const { id } = c.req.valid('param');
      const parsed = SampleBatch.safeParse(c.req.valid('json'));
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw Invalid(`invalid sample batch: ${issue.path.join('.')}: ${issue.message}`);
      }
      if (device !== id || parsed.data.deviceId !== id) throw Forbidden('a device may only upload its own samples');
      try {
        return c.json(await storeSamples(db, limit, device, parsed.data), 200);
      } catch (err) {
        if (err instanceof RateLimited) c.header('Retry-After', String(err.retryAfterS));
        throw err;
      }
    },
  );
}

export function sampleRoutes(db: Db) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('models:write', 'models:write'));
  return app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      summary: 'Captured samples of a model (name: every version; name@N or name@alias: one), newest first, with labels fed back',
      request: {
        query: z.object({
          model: z.string().openapi({ example: 'churn@3' }),
          cohort: z.string().optional(),
          since: z.iso.datetime({ offset: true }).optional(),
          ...Pagination.shape,
        }),
      },
      responses: { 200: json(z.object({ samples: z.array(SampleView) }), 'Samples'), ...errorResponses },
    }),
    async (c) => c.json({ samples: await listSamples(db, c.req.valid('query')) }, 200),
  );
}
