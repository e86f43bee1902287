// /api/v1/models/{name}/retrain-policy (get, set, delete) and /api/v1/models/{name}/retrain (start a job now).
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { allows } from '../auth/roles.ts';
import type { Db } from '../db/client.ts';
import type { AppEnv } from '../http/app-env.ts';
import { actorOf, requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json } from '../http/schemas.ts';
import { startManualJob } from './job-service.ts';
import { deletePolicy, getPolicy, putPolicy } from './retrain-policy.ts';

const NameParam = z.object({ name: z.string().openapi({ param: { name: 'name', in: 'path' } }) });
const Policy = z
  .object({
    model: z.string(),
    enabled: z.boolean(),
    cron: z.string().nullable(),
    driftOpenForS: z.number().nullable(),
    trainer: z.record(z.string(), z.unknown()),
    data: z.object({ dataset: z.string(), includeSamples: z.boolean(), includeLabels: z.boolean() }),
    after: z.record(z.string(), z.unknown()),
    timeoutS: z.number(),
    maxAttempts: z.number(),
    updatedAt: z.string(),
    updatedBy: z.string().nullable(),
  })
  .openapi('RetrainPolicy');
const JobRef = z.object({ id: z.string(), model: z.string(), status: z.string(), trigger: z.record(z.string(), z.unknown()), parent: z.string().nullable() }).openapi('JobRef');

export function retrainPolicyRoutes(db: Db) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('models:write'));
  return app
    .openapi(
      createRoute({ method: 'get', path: '/{name}/retrain-policy', summary: "A model's retraining policy", request: { params: NameParam }, responses: { 200: json(Policy, 'Policy'), ...errorResponses } }),
      async (c) => c.json(await getPolicy(db, c.req.valid('param').name), 200),
    )
    .openapi(
      createRoute({
        method: 'put',
        path: '/{name}/retrain-policy',
        summary: 'Set the retraining policy: cron and/or drift trigger, trainer (builtin | command | webhook), data, what follows (optimize, canary rollout)',
        request: { params: NameParam, body: { content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } } } },
        responses: { 200: json(Policy, 'Policy'), ...errorResponses },
      }),
      async (c) => {
        const principal = c.get('principal');
        return c.json(await putPolicy(db, c.req.valid('param').name, c.req.valid('json'), { name: actorOf(c), isAdmin: allows(principal.role, 'admin') }), 200);
      },
    )
    .openapi(
      createRoute({ method: 'delete', path: '/{name}/retrain-policy', summary: 'Remove the retraining policy', request: { params: NameParam }, responses: { 204: { description: 'Removed' }, ...errorResponses } }),
      async (c) => {
        await deletePolicy(db, c.req.valid('param').name, actorOf(c));
        return c.body(null, 204);
      },
    )
    .openapi(
      createRoute({ method: 'post', path: '/{name}/retrain', summary: "Start a training job now with the model's policy", request: { params: NameParam }, responses: { 201: json(JobRef, 'Queued job'), ...errorResponses } }),
      async (c) => c.json(await startManualJob(db, c.req.valid('param').name, actorOf(c)), 201),
    );
}
