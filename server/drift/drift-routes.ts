// /api/v1/drift: drift of a model version for a cohort (or the fleet) over a window, and on-demand evaluation.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Db } from '../db/client.ts';
import type { AppEnv } from '../http/app-env.ts';
import { requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json } from '../http/schemas.ts';
import { Duration, durationSeconds } from '../http/bounds.ts';
import { resolveVersion } from '../models/model-service.ts';
import { getCohort } from '../cohorts/cohort-service.ts';
import type { DriftMonitor } from './drift-monitor.ts';
import { queryDrift } from './drift-service.ts';

const Window = Duration;
const End = z.iso.datetime({ offset: true }).openapi({ description: 'end of the window (default now)' });

const FeatureResult = z
  .object({
    feature: z.string(),
    kind: z.enum(['numeric', 'categorical']),
    method: z.string(),
    score: z.number().nullable(),
    statistic: z.number().nullable(),
    threshold: z.number(),
    pValue: z.number().optional(),
    significance: z.object({ method: z.enum(['ks', 'chisquare']), pValue: z.number(), alpha: z.number() }).optional(),
    drifted: z.boolean(),
    verdict: z.enum(['drifted', 'not_drifted', 'insufficient_data']),
    reason: z.string().optional(),
    n: z.number(),
    referenceN: z.number(),
  })
  .openapi('FeatureDrift');
const FeatureHistogram = z
  .discriminatedUnion('kind', [
    z.object({ feature: z.string(), kind: z.literal('numeric'), edges: z.array(z.number()), reference: z.array(z.number()), live: z.array(z.number()) }),
    z.object({ feature: z.string(), kind: z.literal('categorical'), categories: z.array(z.string()), reference: z.array(z.number()), live: z.array(z.number()) }),
  ])
  .openapi('FeatureHistogram', { description: 'numeric: counts are underflow, the bins between the edges, overflow; categorical: the categories, then "other"' });
const Drift = z
  .object({
    model: z.string(),
    cohort: z.string().nullable(),
    window: z.object({ start: z.string(), end: z.string(), seconds: z.number(), granularity: z.string(), fromBucket: z.string() }),
    windows: z.number(),
    rows: z.number(),
    referenceRows: z.number(),
    dataset: z.object({
      evaluated: z.number(),
      driftedCount: z.number(),
      driftedShare: z.number(),
      threshold: z.number(),
      drifted: z.boolean(),
      verdict: z.enum(['drifted', 'not_drifted', 'insufficient_data']),
    }),
    features: z.array(FeatureResult),
    outputs: z.array(FeatureResult),
    quality: z.object({ rows: z.number(), schemaViolations: z.object({ missing: z.number(), extra: z.number(), wrongType: z.number() }), outOfRange: z.number(), nans: z.number() }),
    skippedBuckets: z.number(),
    dropped: z.array(z.object({ reason: z.string(), windows: z.number(), rows: z.number(), devices: z.number(), lastAt: z.string(), hint: z.string() })),
    histograms: z.array(FeatureHistogram).optional().openapi({ description: 'with histograms=true: reference vs live bin counts per feature' }),
  })
  .openapi('Drift');
const Evaluation = z.object({
  cohort: z.string(),
  model: z.string(),
  rows: z.number(),
  verdict: z.string(),
  driftedFeatures: z.array(z.string()),
  transition: z.enum(['opened', 'updated', 'closed']).nullable(),
  alert: z.record(z.string(), z.unknown()).nullable(),
});

const windowOf = durationSeconds;

export function driftRoutes(deps: { db: Db; monitor: DriftMonitor; defaultWindowS: number }) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('models:write'));
  return app
    .openapi(
      createRoute({
        method: 'get',
        path: '/',
        summary: 'Drift of a model version for a cohort (or every device running it) over a window, per feature and output, with the dataset verdict',
        request: {
          query: z.object({
            model: z.string().openapi({ example: 'churn@3' }),
            cohort: z.string().optional(),
            window: Window.optional(),
            end: End.optional(),
            histograms: z.enum(['true', 'false']).optional().openapi({ description: 'true: add each feature\'s reference and live bin counts' }),
          }),
        },
        responses: { 200: json(Drift, 'Drift report'), ...errorResponses },
      }),
      async (c) => {
        const q = c.req.valid('query');
        const result = await queryDrift(deps.db, { model: q.model, cohort: q.cohort, windowS: windowOf(q.window, 3600), end: q.end ? new Date(q.end) : undefined, histograms: q.histograms === 'true' });
        return c.json(result, 200);
      },
    )
    .openapi(
      createRoute({
        method: 'post',
        path: '/evaluate',
        summary: 'Run the drift monitor now (alerts open and close as on the schedule); optionally one model version and/or cohort',
        request: {
          body: { content: { 'application/json': { schema: z.object({ model: z.string().optional(), cohort: z.string().optional(), window: Window.optional(), end: End.optional() }) } } },
        },
        responses: { 200: json(z.object({ evaluations: z.array(Evaluation) }), 'Evaluations'), ...errorResponses },
      }),
      async (c) => {
        const b = c.req.valid('json');
        const modelVersionId = b.model ? (await resolveVersion(deps.db, b.model)).id : undefined;
        if (b.cohort) await getCohort(deps.db, b.cohort);
        const evaluations = await deps.monitor.run({ modelVersionId, cohort: b.cohort, windowS: windowOf(b.window, deps.defaultWindowS), end: b.end ? new Date(b.end) : undefined });
        return c.json({ evaluations: evaluations as Array<z.infer<typeof Evaluation>> }, 200);
      },
    );
}
