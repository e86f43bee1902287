// The HTTP application: /api/v1 routes, OpenAPI document, /artifacts, /metrics, /healthz.
// Route modules are chained so `AppType` carries every route's types to the CLI's typed client.
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Logger } from 'pino';
import { artifactRoutes } from './artifacts/artifact-routes.ts';
import type { DownloadGate } from './artifacts/download-gate.ts';
import { brokerRoutes, deviceBrokerAccessRoutes } from './broker/broker-routes.ts';
import type { BrokerReconciler } from './broker/broker-reconciler.ts';
import type { MosquittoAccess } from './broker/mosquitto-access.ts';
import type { ArtifactStore } from './artifacts/artifact-store.ts';
import { DeviceAuthenticator } from './artifacts/device-auth.ts';
import { alertRoutes } from './alerts/alert-routes.ts';
import { auditRoutes } from './audit/audit-routes.ts';
import { tokenRoutes } from './auth/token-routes.ts';
import { bundleRoutes } from './bundles/bundle-routes.ts';
import { cohortRoutes } from './cohorts/cohort-routes.ts';
import { datasetRoutes } from './datasets/dataset-routes.ts';
import type { Db } from './db/client.ts';
import { deploymentRoutes } from './deployments/deployment-routes.ts';
import type { DesiredState } from './deployments/desired-state.ts';
import type { DeviceCommands } from './devices/device-commands.ts';
import type { DeviceBrokerAccess } from './broker/device-broker-access.ts';
import { emqxHookRoutes } from './broker/emqx-hooks.ts';
import { deviceRoutes } from './devices/device-routes.ts';
import type { DriftMonitor } from './drift/drift-monitor.ts';
import { driftRoutes } from './drift/drift-routes.ts';
import { referenceRoutes } from './drift/reference-routes.ts';
import { docsRoutes } from './docs/docs-routes.ts';
import { enrollRoutes, enrollTokenRoutes } from './enroll/enroll-routes.ts';
import type { EventFeed } from './events/event-feed.ts';
import { eventRoutes } from './events/event-routes.ts';
import { groundTruthRoutes } from './ground-truth/ground-truth-routes.ts';
import type { AppEnv } from './http/app-env.ts';
import { authenticate } from './http/auth.ts';
import { errorBody, onError, validationHook } from './http/errors.ts';
import type { KeyCipher } from './keys/key-cipher.ts';
import { keyRoutes } from './keys/key-routes.ts';
import { rootOf } from './keys/key-service.ts';
import { serveConsole } from './http/console.ts';
import { fleetRoutes } from './fleet/fleet-routes.ts';
import { sessionRoutes } from './auth/session-routes.ts';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Metrics } from './metrics.ts';
import { modelRoutes } from './models/model-routes.ts';
import type { ModelRunner } from './models/model-runner.ts';
import { runRoutes } from './models/run-routes.ts';
import { optimizeRoutes } from './optimize/optimize-routes.ts';
import { jobRoutes } from './jobs/job-routes.ts';
import type { JobRunner } from './jobs/job-runner.ts';
import { retrainPolicyRoutes } from './jobs/policy-routes.ts';
import { rolloutRoutes } from './rollouts/rollout-routes.ts';
import { sampleRoutes, sampleUploadRoutes } from './samples/sample-routes.ts';
import { settingsRoutes } from './settings/settings-routes.ts';
import type { VersionReferenceCheck } from './models/model-service.ts';
import { telemetryRoutes } from './telemetry/telemetry-routes.ts';
import { historyRoutes } from './history/history-routes.ts';
import { webhookRoutes } from './webhooks/webhook-routes.ts';

export interface AppDeps {
  db: Db;
  store: ArtifactStore;
  metrics: Metrics;
  logger: Logger;
  desired: DesiredState;
  commands: DeviceCommands;
  maxUploadBytes: number;
  versionReferenceChecks: VersionReferenceCheck[];
  disconnectDevice(id: string): Promise<void>;
  /** Device credentials on the broker: provisioned at enrollment, enabled at approval (issue 16). */
  brokerAccess: DeviceBrokerAccess;
  /** EMQX's HTTP authentication/authorization hooks (off without a token). */
  mqttHooks?: { token?: string; server: { username: string; password: string } };
  /** A device became approved or was relabelled (late joiners of cohort deployments). */
  onDeviceChanged(id: string): Promise<void>;
  /** After a new key list: re-sign and republish desired state. */
  onKeyListChanged(): Promise<void>;
  /** Encrypts release private keys at rest (keys/key-cipher.ts). */
  keyCipher: KeyCipher;
  /** Warning horizon before the key list expires, in seconds. */
  keylistWarnS: number;
  /** The broker and server URLs to hand devices, given the URL the device called us on. */
  deviceUrls(requestUrl: string): { mqttUrl: string; serverUrl: string; ca?: string };
  health(): Promise<{ ok: boolean; checks: Record<string, boolean> }>;
  /** Drift evaluation on demand (POST /drift/evaluate) and its default window. */
  driftMonitor: DriftMonitor;
  driftWindowS: number;
  /** Training jobs: the pipeline's uploads continue a waiting job on this runner. */
  jobRunner: JobRunner;
  /** The event stream this replica serves (follows the events table). */
  eventFeed: EventFeed;
  /** Runs a version on one input (the console's playground) off the event loop. */
  modelRunner: ModelRunner;
  /** The built console (default web/dist); served at / for every GET no route answered. */
  webDistDir?: string;
  /** The webhook outbox's sender: woken when a test ping is queued. */
  webhooks?: { wake(): void };
  /** Sheds artifact downloads past a concurrency limit (503 + Retry-After); none: no limit. */
  downloadGate?: DownloadGate;
  /** External Mosquitto: device clients restored at a device's request, and reconciled on demand. */
  mosquitto?: { access: MosquittoAccess; reconciler: BrokerReconciler };
}

// /predictions authenticates devices (Basic) or tokens itself; /jobs too (pipelines use job tokens).
const PROTECTED = ['models', 'datasets', 'bundles', 'deployments', 'devices', 'cohorts', 'enroll-tokens', 'tokens', 'keys', 'audit', 'rollouts', 'drift', 'alerts', 'telemetry', 'labels', 'performance', 'agent-settings', 'samples', 'events', 'broker'];

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
  app.use('*', serveConsole(deps.webDistDir ?? defaultWebDist()));
  app.onError(onError(deps.logger));
  app.notFound((c) => c.json(errorBody('not_found', `no route for ${c.req.method} ${c.req.path}`), 404));

  app.get('/healthz', async (c) => {
    const h = await deps.health();
    return c.json(h, h.ok ? 200 : 503);
  });
  app.get('/metrics', async (c) => c.text(await metrics.registry.metrics(), 200, { 'content-type': metrics.registry.contentType }));
  const deviceAuth = new DeviceAuthenticator(db);
  app.route('/artifacts', artifactRoutes({ db, store: deps.store, deviceAuth, gate: deps.downloadGate, metrics }));
  app.route('/api/v1/mqtt', emqxHookRoutes({ db, metrics, token: deps.mqttHooks?.token, server: deps.mqttHooks?.server ?? { username: '', password: '' } }));

  app.doc31('/api/v1/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Flotilla control plane', version: '0.1.0', description: 'Model registry, devices, cohorts, bundles and deployments for ML on edge fleets.' },
    security: [{ bearer: [] }],
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });
  app.route('/docs', docsRoutes());

  // Device enrollment authenticates with the enrollment token in the body, not a bearer token.
  const api = new OpenAPIHono<AppEnv>({ defaultHook: validationHook }).route(
    '/enroll',
    enrollRoutes({
      db,
      urls: deps.deviceUrls,
      trustRoot: async () => {
        const root = await rootOf(db);
        return root ? { rootKeyid: root.keyid, rootPublicKey: root.publicKey } : null;
      },
      onDeviceChanged: deps.onDeviceChanged,
      brokerAccess: deps.brokerAccess,
    }),
  )
    // Before the bearer middleware of /devices/*: devices upload samples with their own credentials.
    .route('/devices', sampleUploadRoutes({ db, deviceAuth }))
    .route('/devices', deviceBrokerAccessRoutes({ db, access: deps.mosquitto?.access, metrics, desired: deps.desired }));
  for (const resource of PROTECTED) api.use(`/${resource}/*`, authenticate(db));
  api.use('/history/*', authenticate(db));
  const routes = api
    .route('/models', modelRoutes({ db, store: deps.store, maxUploadBytes: deps.maxUploadBytes, versionReferenceChecks: deps.versionReferenceChecks }))
    .route('/bundles', bundleRoutes({ db, store: deps.store }))
    .route('/deployments', deploymentRoutes({ db, desired: deps.desired, store: deps.store }))
    .route('/devices', deviceRoutes({ db, disconnectDevice: deps.disconnectDevice, brokerAccess: deps.brokerAccess, onDeviceChanged: deps.onDeviceChanged, commands: deps.commands, desired: deps.desired }))
    .route('/cohorts', cohortRoutes(db))
    .route('/enroll-tokens', enrollTokenRoutes(db))
    .route('/tokens', tokenRoutes(db))
    .route('/keys', keyRoutes({ db, cipher: deps.keyCipher, keylistWarnS: deps.keylistWarnS, onKeyListChanged: deps.onKeyListChanged }))
    .route('/audit', auditRoutes(db))
    .route('/models', referenceRoutes(db, deps.store, deps.desired))
    .route('/models', optimizeRoutes({ db, store: deps.store }))
    .route('/datasets', datasetRoutes({ db, store: deps.store, maxUploadBytes: deps.maxUploadBytes }))
    .route('/drift', driftRoutes({ db, monitor: deps.driftMonitor, defaultWindowS: deps.driftWindowS }))
    .route('/models', retrainPolicyRoutes(db))
    .route('/jobs', jobRoutes({ db, store: deps.store, runner: deps.jobRunner, maxUploadBytes: deps.maxUploadBytes }))
    .route('/rollouts', rolloutRoutes({ db, desired: deps.desired, store: deps.store }))
    .route('/alerts', alertRoutes(db))
    .route('/telemetry', telemetryRoutes(db))
    .route('/', groundTruthRoutes({ db, deviceAuth }))
    .route('/agent-settings', settingsRoutes({ db, desired: deps.desired }))
    .route('/samples', sampleRoutes(db))
    .route('/events', eventRoutes({ db, feed: deps.eventFeed }))
    .route('/models', runRoutes({ db, store: deps.store, runner: deps.modelRunner }))
    .route('/fleet', fleetRoutes(db))
    .route('/me', sessionRoutes(db))
    .route('/history', historyRoutes(db))
    .route('/webhooks', webhookRoutes({ db, cipher: deps.keyCipher, wake: () => deps.webhooks?.wake() }))
    .route('/broker', brokerRoutes({ db, reconciler: deps.mosquitto?.reconciler }));
  return app.route('/api/v1', routes);
}

export type AppType = ReturnType<typeof createApp>;

/** web/dist of this checkout: the nearest folder above with a package.json (server/ from source, dist/server/ compiled). */
function defaultWebDist(): string {
  let dir = import.meta.dirname;
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return path.join(dir, 'web', 'dist');
}
