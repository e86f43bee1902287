// /api/v1/models/{name}/versions/{ref}/optimize and /evaluate, mounted next to the registry's routes.
// Both answer when the work is done (synchronous): evaluation is capped at MAX_EVAL_SAMPLES rows and
// runs in a worker thread, so a request takes seconds for models of the size devices run.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import type { Db } from '../db/client.ts';
import type { AppEnv } from '../http/app-env.ts';
import { actorOf, requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { ErrorResponse, errorResponses, json } from '../http/schemas.ts';
import { formatRef } from '../models/model-ref.ts';
import { evaluateVersion, optimizeVersion } from './optimize-service.ts';

const NameParam = z.object({ name: z.string().openapi({ param: { name: 'name', in: 'path' } }) });
const RefParam = NameParam.extend({ ref: z.string().openapi({ param: { name: 'ref', in: 'path' }, description: 'version number or alias' }) });
const refOf = (name: string, ref: string) => (/^[0-9]+$/.test(ref) ? formatRef(name, Number(ref)) : `${name}@${ref}`);

const Preprocess = z.record(z.string(), z.unknown()).optional().openapi({ description: 'image models without a bundle: a bundle definition\'s image `preprocess`' });
const OptimizeBody = z
  .object({
    dataset: z.string().min(1).optional().openapi({ description: 'evaluation dataset, name@N (labels optional); without one the variant is compared with its parent on inputs generated from the declared input shape' }),
    quantize: z.object({ form: z.enum(['qdq', 'integer']).default('qdq'), perChannel: z.boolean().default(false) }).optional(),
    prune: z
      .object({
        sparsity: z.number().gt(0).lt(1),
        structured: z.boolean().default(false),
        calibration: z.string().min(1).optional().openapi({ description: 'dataset (name@N, not the evaluation one) to calibrate pruning on' }),
      })
      .optional(),
    preprocess: Preprocess,
  })
  .refine((b) => b.quantize || b.prune, 'ask for quantize and/or prune')
  .openapi('OptimizeRequest');
const Outcome = z.object({ version: z.record(z.string(), z.unknown()), report: z.record(z.string(), z.unknown()) }).openapi('OptimizeOutcome');

export function optimizeRoutes(deps: { db: Db; store: ArtifactStore }) {
  const { db, store } = deps;
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('models:write'));
  return app
    .openapi(
      createRoute({
        method: 'post',
        path: '/{name}/versions/{ref}/optimize',
        summary: 'Quantize (int8) and/or prune a version; the result is registered as its child with the evaluation report',
        description: 'The child is `rejected` (with the reason) when it breaks the model\'s budgets. A model the optimizer cannot rewrite is refused with 422 and details.reason (corrupt_model, not_quantizable, not_prunable, …).',
        request: { params: RefParam, body: { content: { 'application/json': { schema: OptimizeBody } } } },
        responses: { 201: json(Outcome, 'The registered variant and its report'), 422: json(ErrorResponse, 'The model cannot be optimized'), ...errorResponses },
      }),
      async (c) => {
        const { name, ref } = c.req.valid('param');
        const b = c.req.valid('json');
        const out = await optimizeVersion(db, store, {
          ref: refOf(name, ref),
          dataset: b.dataset,
          quantize: b.quantize,
          prune: b.prune && { sparsity: b.prune.sparsity, structured: b.prune.structured },
          calibration: b.prune?.calibration,
          preprocess: b.preprocess,
          actor: actorOf(c),
        });
        return c.json(out as unknown as z.infer<typeof Outcome>, 201);
      },
    )
    .openapi(
      createRoute({
        method: 'post',
        path: '/{name}/versions/{ref}/evaluate',
        summary: 'Evaluate a version against the champion (else its parent) on a dataset; store the report and set the status from the budgets',
        request: {
          params: RefParam,
          body: { content: { 'application/json': { schema: z.object({ dataset: z.string().min(1), preprocess: Preprocess }) } } },
        },
        responses: { 200: json(Outcome, 'The version and its report'), ...errorResponses },
      }),
      async (c) => {
        const { name, ref } = c.req.valid('param');
        const b = c.req.valid('json');
        const out = await evaluateVersion(db, store, { ref: refOf(name, ref), dataset: b.dataset, preprocess: b.preprocess, actor: actorOf(c) });
        return c.json(out as unknown as z.infer<typeof Outcome>, 200);
      },
    );
}
