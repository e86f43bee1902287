// /api/v1/agent-settings: agent settings per cohort or device, and what a device gets in effect.
// Operators (who run the fleet) and ML engineers (who need sample capture) may both change them.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { allows } from '../auth/roles.ts';
import type { Db } from '../db/client.ts';
import type { DesiredState } from '../deployments/desired-state.ts';
import { Forbidden } from '../errors.ts';
import type { AppEnv } from '../http/app-env.ts';
import { actorOf } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json, page, Pagination } from '../http/schemas.ts';
import { deleteSettings, effectiveFor, getSettings, listSettings, putSettings } from './settings-service.ts';

const Capture = z.object({ enabled: z.boolean(), maxPerMinute: z.number(), batchSize: z.number() });
const Settings = z
  .object({ telemetryIntervalS: z.number().optional(), statsWindowS: z.number().optional(), sampleCapture: Capture.partial().optional() })
  .openapi('AgentSettings', { description: 'Any of: telemetryIntervalS (1–3600), statsWindowS (5–86400), sampleCapture {enabled, maxPerMinute 1–6000, batchSize 1–1000}' });
const SettingsView = z.object({ scope: z.enum(['cohort', 'device']), target: z.string(), settings: Settings, updatedAt: z.string(), updatedBy: z.string().nullable() }).openapi('AgentSettingsEntry');
const Effective = z
  .object({
    deviceId: z.string(),
    cohort: z.string().nullable(),
    config: z.object({ telemetryIntervalS: z.number(), statsWindowS: z.number(), sampleCapture: Capture }),
    sources: z.array(z.string()),
  })
  .openapi('EffectiveAgentSettings');
const Target = z.object({
  scope: z.enum(['cohort', 'device']).openapi({ param: { name: 'scope', in: 'path' } }),
  target: z.string().min(1).max(128).openapi({ param: { name: 'target', in: 'path' } }),
});

/** GET/HEAD: any role; changes: operators, ML engineers, admins. */
const canChange: MiddlewareHandler<AppEnv> = async (c, next) => {
  const { role } = c.get('principal');
  if (c.req.method !== 'GET' && c.req.method !== 'HEAD' && !allows(role, 'devices:write') && !allows(role, 'models:write')) {
    throw Forbidden(`role "${role}" may not change agent settings (needs devices:write or models:write)`, { role });
  }
  await next();
};

export function settingsRoutes(deps: { db: Db; desired: DesiredState }) {
  const { db, desired } = deps;
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', canChange);
  return app
    .openapi(
      createRoute({
        method: 'get',
        path: '/',
        summary: 'List stored agent settings',
        request: { query: Pagination.extend({ scope: z.enum(['cohort', 'device']).optional() }) },
        responses: { 200: json(z.object({ settings: z.array(SettingsView) }), 'Settings'), ...errorResponses },
      }),
      async (c) => c.json({ settings: page(await listSettings(db, c.req.valid('query').scope), c.req.valid('query')) }, 200),
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/effective/{device}',
        summary: "A device's effective settings: defaults < its cohort's < its own",
        request: { params: z.object({ device: z.string().openapi({ param: { name: 'device', in: 'path' } }) }) },
        responses: { 200: json(Effective, 'Effective settings'), ...errorResponses },
      }),
      async (c) => c.json(await effectiveFor(db, c.req.valid('param').device), 200),
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/{scope}/{target}',
        summary: 'Settings stored for one cohort or device',
        request: { params: Target },
        responses: { 200: json(SettingsView, 'Settings'), ...errorResponses },
      }),
      async (c) => {
        const { scope, target } = c.req.valid('param');
        return c.json(await getSettings(db, scope, target), 200);
      },
    )
    .openapi(
      createRoute({
        method: 'put',
        path: '/{scope}/{target}',
        summary: 'Set (replace) the settings of a cohort or device; affected devices get re-signed manifests',
        request: { params: Target, body: { content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } }, required: true } },
        responses: { 200: json(SettingsView.extend({ resigned: z.array(z.string()) }), 'Stored; `resigned` lists the devices given new manifests'), ...errorResponses },
      }),
      async (c) => {
        const { scope, target } = c.req.valid('param');
        return c.json(await putSettings(db, desired, scope, target, c.req.valid('json'), actorOf(c)), 200);
      },
    )
    .openapi(
      createRoute({
        method: 'delete',
        path: '/{scope}/{target}',
        summary: 'Remove the settings of a cohort or device (its devices fall back to the next layer)',
        request: { params: Target },
        responses: { 200: json(z.object({ resigned: z.array(z.string()) }), 'Removed'), ...errorResponses },
      }),
      async (c) => {
        const { scope, target } = c.req.valid('param');
        return c.json(await deleteSettings(db, desired, scope, target, actorOf(c)), 200);
      },
    );
}
