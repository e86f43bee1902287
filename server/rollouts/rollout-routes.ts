// /api/v1/rollouts: start a staged rollout of a bundle on a cohort, list, show, pause, resume, abort.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import type { Db } from '../db/client.ts';
import type { DesiredState } from '../deployments/desired-state.ts';
import type { AppEnv } from '../http/app-env.ts';
import { actorOf, requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json, Pagination } from '../http/schemas.ts';
import { changeRollout, createRollout, listRollouts, ROLLOUT_DEVICE_STATES, showRollout } from './rollout-service.ts';

const Gates = z.object({
  maxFailedUpdates: z.number(),
  minUpdateSuccessRatio: z.number(),
  maxErrorRate: z.number().optional(),
  maxLatencyRatio: z.number().nullable(),
  drift: z.boolean(),
  minAgreement: z.number(),
  maxMeanAbsDiff: z.number().optional(),
  maxShadowLatencyRatio: z.number(),
  maxShadowErrorRate: z.number(),
  minShadowCompared: z.number(),
  stageTimeoutS: z.number().optional(),
  onFailure: z.enum(['pause', 'rollback']),
});
const ShadowSettings = z.object({ share: z.number(), durationS: z.number(), windowS: z.number() });
const Rollout = z
  .object({
    id: z.string(),
    bundleId: z.string(),
    bundle: z.string(),
    model: z.string(),
    cohort: z.string(),
    stages: z.array(z.number()),
    stage: z.number(),
    status: z.enum(['running', 'succeeded', 'paused', 'aborted']),
    bakeS: z.number(),
    gates: Gates,
    shadow: ShadowSettings.nullable().openapi({ description: 'The shadow stage before the switch (share of requests in (0, 1], seconds, window); null without one' }),
    phase: z.enum(['shadow', 'stages']),
    lastCheck: z
      .record(z.string(), z.unknown())
      .nullable()
      .openapi({ description: 'The last tick: `gates` (each {name, value, threshold, status: pass|fail|waiting|skipped, reason}), `verdict`, and `history` (the same per finished stage)' }),
    previousBundleId: z.string().nullable(),
    assignedBundleId: z.string().openapi({ description: "The bundle the cohort's devices get: bundleId, or its variant child's bundle when the cohort prefers a variant (e.g. int8)" }),
    jobId: z.string().nullable(),
    stageStartedAt: z.string(),
    createdAt: z.string(),
    createdBy: z.string().nullable(),
    updatedAt: z.string().nullable(),
  })
  .openapi('Rollout');
const RolloutDetail = Rollout.extend({
  devices: z.array(
    z.object({
      id: z.string(),
      stage: z.number(),
      state: z.enum(ROLLOUT_DEVICE_STATES),
      reason: z.string().nullable(),
      desiredBundle: z.string().nullable(),
      activeBundle: z.string().nullable(),
      updateState: z.string().nullable(),
    }),
  ),
}).openapi('RolloutDetail');
const IdParam = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) });
const CreateBody = z.object({
  bundle: z.string().min(1).openapi({ description: 'bundle id, bundle name or model@N' }),
  cohort: z.string().min(1),
  stages: z.array(z.number()).optional().openapi({ description: 'fractions of the cohort, increasing, ending at 1; default [0.1, 1]' }),
  bakeS: z.number().int().min(0).optional().openapi({ description: 'seconds a stage stays healthy before the next; default 300' }),
  gates: z
    .object({
      maxFailedUpdates: z.number().int().min(0).optional(),
      minUpdateSuccessRatio: z.number().min(0).max(1).optional(),
      maxErrorRate: z.number().min(0).max(1).optional(),
      maxLatencyRatio: z.number().min(1).max(100).nullable().optional().openapi({ description: 'latency regression gate (default 1.2); null turns it off' }),
      drift: z.boolean().optional(),
      minAgreement: z.number().min(0).max(1).optional(),
      maxMeanAbsDiff: z.number().min(0).optional(),
      maxShadowLatencyRatio: z.number().gt(0).max(100).optional(),
      maxShadowErrorRate: z.number().min(0).max(1).optional(),
      minShadowCompared: z.number().int().min(1).max(1_000_000).optional(),
      stageTimeoutS: z.number().int().min(1).max(30 * 86400).optional(),
      onFailure: z.enum(['pause', 'rollback']).optional(),
    })
    .optional()
    .openapi({ description: 'Gates and their defaults: README "Rollouts"' }),
  shadow: z
    .object({
      share: z.number().openapi({ description: 'share of live requests also run on the candidate, in (0, 1]' }),
      durationS: z.number().int().min(1).max(30 * 86400).optional().openapi({ description: 'seconds of shadow before the switch; default 1800' }),
      windowS: z.number().int().min(1).max(3600).optional().openapi({ description: 'seconds per reported window; default 60 (at most half the duration)' }),
    })
    .optional()
    .openapi({ description: 'A shadow stage before the switch: the candidate runs beside the serving bundle on the first stage devices, never answering' }),
});

export function rolloutRoutes(deps: { db: Db; desired: DesiredState; store: ArtifactStore }) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('models:write'));
  const action = (name: 'pause' | 'resume' | 'abort', summary: string) =>
    createRoute({
      method: 'post',
      path: `/{id}/${name}`,
      summary,
      request: { params: IdParam, body: { content: { 'application/json': { schema: z.object({ rollback: z.boolean().optional() }) } }, required: false } },
      responses: { 200: json(Rollout, 'Rollout'), ...errorResponses },
    });
  return app
    .openapi(
      createRoute({
        method: 'post',
        path: '/',
        summary: 'Start a staged (canary) rollout of a bundle on a cohort',
        description: "When the cohort prefers a variant (e.g. int8) and the bundle's version has a rollable child of it, the devices get that child's bundle (built once from this bundle's definition if needed), as with deployments; `assignedBundleId` names it.",
        request: { body: { content: { 'application/json': { schema: CreateBody } } } },
        responses: { 201: json(Rollout, 'Started'), ...errorResponses },
      }),
      async (c) => {
        const b = c.req.valid('json');
        return c.json(await createRollout(deps.db, deps.desired, { ...b, actor: actorOf(c), store: deps.store }), 201);
      },
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/',
        summary: 'List rollouts, newest first',
        request: { query: z.object({ status: z.enum(['running', 'succeeded', 'paused', 'aborted']).optional(), cohort: z.string().optional(), ...Pagination.shape }) },
        responses: { 200: json(z.object({ rollouts: z.array(Rollout) }), 'Rollouts'), ...errorResponses },
      }),
      async (c) => c.json({ rollouts: await listRollouts(deps.db, c.req.valid('query')) }, 200),
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/{id}',
        summary: 'Show a rollout with its devices in stage order',
        request: { params: IdParam },
        responses: { 200: json(RolloutDetail, 'Rollout'), ...errorResponses },
      }),
      async (c) => c.json(await showRollout(deps.db, c.req.valid('param').id), 200),
    )
    .openapi(action('pause', 'Pause a running rollout (it stops advancing)'), async (c) =>
      c.json(await changeRollout(deps.db, deps.desired, c.req.valid('param').id, 'pause', { actor: actorOf(c) }), 200),
    )
    .openapi(action('resume', 'Resume a paused rollout (the stage bakes again)'), async (c) =>
      c.json(await changeRollout(deps.db, deps.desired, c.req.valid('param').id, 'resume', { actor: actorOf(c) }), 200),
    )
    .openapi(action('abort', 'Abort a rollout; with rollback, its devices go back to the previous bundle'), async (c) => {
      const body = (await c.req.json().catch(() => ({}))) as { rollback?: boolean };
      return c.json(await changeRollout(deps.db, deps.desired, c.req.valid('param').id, 'abort', { rollback: body.rollback === true, actor: actorOf(c) }), 200);
    });
}
