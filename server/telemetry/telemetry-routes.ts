// /api/v1/telemetry: rate, errors, latency quantiles and resources of a device or a cohort.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Db } from '../db/client.ts';
import type { AppEnv } from '../http/app-env.ts';
import { requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json } from '../http/schemas.ts';
import { Duration, durationSeconds } from '../http/bounds.ts';
import { deviceSeries } from './device-series.ts';
import { telemetrySummary } from './telemetry-service.ts';

const Resources = z.object({
  deviceId: z.string(),
  at: z.string(),
  cpu: z.number(),
  rssBytes: z.number(),
  diskFreeBytes: z.number(),
  uptimeS: z.number(),
  queueDepth: z.number(),
  activeBundle: z.object({ id: z.string(), counter: z.number() }).nullable(),
  outboxPending: z.number().nullable(),
  outboxPendingBytes: z.number().nullable(),
});
const Lost = z.object({ outboxDropped: z.number(), outboxCorrupt: z.number(), statsDropped: z.number() }).nullable();
const Telemetry = z
  .object({
    target: z.union([z.object({ device: z.string() }), z.object({ cohort: z.string() })]),
    window: z.object({ start: z.string(), end: z.string(), seconds: z.number() }),
    reports: z.number(),
    inferences: z.number(),
    errorCount: z.number(),
    errors: z.record(z.string(), z.number()),
    span: z.object({ from: z.string(), to: z.string(), seconds: z.number() }).nullable(),
    ratePerSecond: z.number().nullable().openapi({ description: 'inferences ÷ span.seconds: the average over the time the devices reported' }),
    activeSeconds: z.number().openapi({ description: 'device-seconds in which the devices were serving (distinct seconds with at least one request)' }),
    activeRatePerSecond: z.number().nullable().openapi({ description: 'inferences ÷ activeSeconds: requests per second while serving (for a cohort: per serving device); null without traffic' }),
    errorsPerSecond: z.number().nullable(),
    errorRatio: z.number().nullable(),
    monitoringLost: Lost,
    latency: z.object({ count: z.number(), meanMs: z.number().nullable(), p50: z.number().nullable(), p95: z.number().nullable(), p99: z.number().nullable() }),
    resources: z.object({
      devices: z.array(Resources),
      cpuMean: z.number().nullable(),
      cpuMax: z.number().nullable(),
      rssMaxBytes: z.number().nullable(),
      diskFreeMinBytes: z.number().nullable(),
    }),
    monitoring: z.object({
      lost: Lost.openapi({ description: 'monitoring data lost on the devices over the window (outbox drops, corrupt outbox files, stats samples dropped); null: no report carried it' }),
      pending: z.object({ messages: z.number(), bytes: z.number(), devices: z.number() }).nullable(),
      refusedStats: z
        .array(z.object({ reason: z.string(), windows: z.number(), rows: z.number(), devices: z.number(), lastAt: z.string(), hint: z.string() }))
        .openapi({ description: 'stats windows the server refused against a reference (e.g. no_reference), by reason, with what to do' }),
    }),
  })
  .openapi('Telemetry');

const Series = z
  .object({
    device: z.string(),
    window: z.object({ start: z.string(), end: z.string(), seconds: z.number() }),
    stepS: z.number(),
    points: z.array(
      z.object({
        t: z.string(),
        reports: z.number(),
        inferencesPerSecond: z.number(),
        errorsPerSecond: z.number(),
        errorsByReason: z.record(z.string(), z.number()).openapi({ description: 'errors in the step per reason code' }),
        cpuMean: z.number(),
        cpuMax: z.number(),
        rssMaxBytes: z.number(),
        outboxPendingMax: z.number().nullable(),
      }),
    ),
  })
  .openapi('TelemetrySeries');

export function telemetryRoutes(db: Db) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('devices:write'));
  return app
    .openapi(
    createRoute({
      method: 'get',
      path: '/',
      summary: 'Telemetry of a device or a cohort over a window (default 15m): rate, errors by reason, p50/p95/p99 latency, resources',
      request: {
        query: z.object({
          device: z.string().optional(),
          cohort: z.string().optional(),
          window: Duration.optional(),
          end: z.iso.datetime({ offset: true }).optional(),
        }),
      },
      responses: { 200: json(Telemetry, 'Telemetry summary'), ...errorResponses },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const windowS = durationSeconds(q.window, 900);
      return c.json(await telemetrySummary(db, { device: q.device, cohort: q.cohort, windowS, end: q.end ? new Date(q.end) : undefined }), 200);
    },
  )
    .openapi(
      createRoute({
        method: 'get',
        path: '/series',
        summary: "A device's telemetry over a window as a series (default 1h): per minute (coarser past 12 h, ≤ 720 points) rates, errors by reason, CPU, memory, outbox backlog",
        request: { query: z.object({ device: z.string(), window: Duration.optional(), end: z.iso.datetime({ offset: true }).optional() }) },
        responses: { 200: json(Series, 'Telemetry series'), ...errorResponses },
      }),
      async (c) => {
        const q = c.req.valid('query');
        return c.json(await deviceSeries(db, { device: q.device, windowS: durationSeconds(q.window, 3600), end: q.end ? new Date(q.end) : undefined }), 200);
      },
    );
}
