// /api/v1/deployments: put a bundle on a device or a cohort (direct; staged rollouts build on this).
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import type { Db } from '../db/client.ts';
import type { AppEnv } from '../http/app-env.ts';
import { actorOf, requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json, Pagination } from '../http/schemas.ts';
import type { DesiredState } from './desired-state.ts';
import { deploy, listDeployments } from './deployment-service.ts';
import { DEPLOYMENT_DEVICE_STATES, deploymentStatus } from './deployment-status.ts';
import { staleByDeployment } from './stale-desired.ts';

const Deployment = z
  .object({ id: z.string(), bundleId: z.string(), targetKind: z.enum(['device', 'cohort']), target: z.string(), deviceCount: z.number(), createdAt: z.string(), createdBy: z.string().nullable(), staleDevices: z.number().optional() })
  .openapi('Deployment');

const DeploymentStatus = z
  .object({
    deploymentId: z.string(),
    bundleId: z.string(),
    target: z.object({ kind: z.enum(['device', 'cohort']), name: z.string() }),
    createdAt: z.string(),
    counts: z.record(z.string(), z.number()).openapi({ description: `devices per state: ${DEPLOYMENT_DEVICE_STATES.join(', ')}. A device counts while its desired state comes from this deployment (late joiners of a cohort included; devices moved on to a newer deployment not)` }),
    devices: z.array(
      z.object({
        deviceId: z.string(),
        name: z.string().nullable(),
        online: z.boolean(),
        bundleId: z.string().openapi({ description: "the bundle this device was given (its cohort's preferred variant's, if any)" }),
        activeBundleId: z.string().nullable().openapi({ description: 'the bundle the device reports running now' }),
        activeModel: z.string().nullable().openapi({ description: '`name@N` of the model version it runs now' }),
        state: z.enum(DEPLOYMENT_DEVICE_STATES),
        error: z.object({ code: z.string(), message: z.string() }).optional(),
        updatedAt: z.string(),
      }),
    ),
    superseded: z
      .array(z.object({ deviceId: z.string(), name: z.string().nullable(), bundleId: z.string(), model: z.string(), from: z.string(), to: z.string().nullable(), supersededBy: z.string().nullable() }))
      .openapi({ description: "devices that served this deployment's bundle and were given another deployment or rollout since (from the serving history)" }),
  })
  .openapi('DeploymentStatus');

export function deploymentRoutes(deps: { db: Db; desired: DesiredState; store: ArtifactStore }) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('models:write'));
  return app
    .openapi(
      createRoute({
        method: 'post',
        path: '/',
        summary: 'Deploy a bundle (id, name, or model@N) to a device or a cohort',
        description: 'Devices whose cohort prefers a variant (cohort preferVariant, e.g. int8) get the bundle of the version\'s ready child of that variant (built from this bundle\'s definition if needed); `assignments` says which bundle each device got. A rejected version is refused (409) unless overridden.',
        request: {
          body: { content: { 'application/json': { schema: z.object({ bundle: z.string().min(1), device: z.string().optional(), cohort: z.string().optional() }) } } },
        },
        responses: {
          201: json(z.object({ id: z.string(), bundleId: z.string(), devices: z.array(z.string()), assignments: z.record(z.string(), z.string()) }), 'Deployed'),
          ...errorResponses,
        },
      }),
      async (c) => c.json(await deploy(deps.db, deps.desired, { ...c.req.valid('json'), actor: actorOf(c), store: deps.store }), 201),
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/',
        summary: 'List deployments, newest first',
        request: { query: z.object({ ...Pagination.shape }) },
        responses: { 200: json(z.object({ deployments: z.array(Deployment) }), 'Deployments'), ...errorResponses },
      }),
      async (c) => {
        const rows = await listDeployments(deps.db, c.req.valid('query'));
        const stale = await staleByDeployment(deps.db, rows.map((r) => r.id));
        return c.json({ deployments: rows.map((r) => ({ ...r, staleDevices: stale.get(r.id) ?? 0 })) }, 200);
      },
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/{id}/status',
        summary: "A deployment's status: devices per update state, and each device's bundle, state and failure reason",
        request: {
          params: z.object({ id: z.string() }),
          query: z.object({
            superseded: z
              .enum(['true', 'false'])
              .optional()
              .openapi({ description: "false: `superseded` is empty and not read (views of the current devices only, e.g. the console's cohorts page; at 10,000 superseded devices it is most of the answer). Default true." }),
          }),
        },
        responses: { 200: json(DeploymentStatus, 'Status'), ...errorResponses },
      }),
      async (c) => c.json(await deploymentStatus(deps.db, c.req.valid('param').id, { superseded: c.req.valid('query').superseded !== 'false' }), 200),
    );
}
