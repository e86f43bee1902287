// The HTTP application: /api/v1 routes, OpenAPI document, /metrics, /healthz.
// Route modules are chained so `AppType` carries every route's types to the CLI's typed client.
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Logger } from 'pino';
import type { ArtifactStore } from './artifacts/artifact-store.ts';
import { auditRoutes } from './audit/audit-routes.ts';
import { tokenRoutes } from './auth/token-routes.ts';
import { cohortRoutes } from './cohorts/cohort-routes.ts';
import type { Db } from './db/client.ts';
import { deviceRoutes } from './devices/device-routes.ts';
import { enrollRoutes, enrollTokenRoutes } from './enroll/enroll-routes.ts';
import type { AppEnv } from './http/app-env.ts';
import { authenticate } from './http/auth.ts';
import { errorBody, onError, validationHook } from './http/errors.ts';
import type { Metrics } from './metrics.ts';
import { modelRoutes } from './models/model-routes.ts';
import type { VersionReferenceCheck } from './models/model-service.ts';

export interface AppDeps {
  db: Db;
  store: ArtifactStore;
  metrics: Metrics;
  logger: Logger;
  maxUploadBytes: number;
  versionReferenceChecks: VersionReferenceCheck[];
  disconnectDevice(id: string): Promise<void>;
  /** The broker and server URLs to hand devices, given the URL the device called us on. */
  deviceUrls(requestUrl: string): { mqttUrl: string; serverUrl: string };
  health(): { ok: boolean; checks: Record<string, boolean> };
}

export function createApp(deps: AppDeps) {
  const { db, metrics } = deps;
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.use('*', async (c, next) => {
    const start = performance.now();
    await next();
    // The matched route pattern (not the raw path) keeps label cardinality bounded.
    const route = c.req.routePath || 'unmatched';
    metrics.httpRequests.inc({ method: c.req.method, route, status: String(c.res.status) });
    metrics.httpDuration.observe({ method: c.req.method, route }, (performance.now() - start) / 1000);
  });
  app.onError(onError(deps.logger));
  app.notFound((c) => c.json(errorBody('not_found', `no route for ${c.req.method} ${c.req.path}`), 404));

  app.get('/healthz', (c) => {
    const h = deps.health();
    return c.json(h, h.ok ? 200 : 503);
  });
  app.get('/metrics', async (c) => c.text(await metrics.registry.metrics(), 200, { 'content-type': metrics.registry.contentType }));

  app.doc31('/api/v1/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Flotilla control plane', version: '0.1.0', description: 'Model registry, devices, cohorts, bundles and rollouts for ML on edge fleets.' },
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });

  // Device enrollment authenticates with the enrollment token in the body, not a bearer token.
  const api = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
    .route('/enroll', enrollRoutes(db, deps.deviceUrls));
  api.use('/models/*', authenticate(db));
  api.use('/devices/*', authenticate(db));
  api.use('/cohorts/*', authenticate(db));
  api.use('/enroll-tokens/*', authenticate(db));
  api.use('/tokens/*', authenticate(db));
  api.use('/audit/*', authenticate(db));
  const routes = api
    .route('/models', modelRoutes({ db, store: deps.store, maxUploadBytes: deps.maxUploadBytes, versionReferenceChecks: deps.versionReferenceChecks }))
    .route('/devices', deviceRoutes({ db, disconnectDevice: deps.disconnectDevice }))
    .route('/cohorts', cohortRoutes(db))
    .route('/enroll-tokens', enrollTokenRoutes(db))
    .route('/tokens', tokenRoutes(db))
    .route('/audit', auditRoutes(db));
  return app.route('/api/v1', routes);
}

export type AppType = ReturnType<typeof createApp>;
