// /api/v1/models/{name}/versions/{ref}/reference and /api/v1/models/{name}/drift-config, mounted next
// to the registry's routes under /models.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import { loadDataset } from '../datasets/dataset-service.ts';
import type { Db } from '../db/client.ts';
import type { DesiredState } from '../deployments/desired-state.ts';
import { Invalid, ServiceError } from '../errors.ts';
import type { AppEnv } from '../http/app-env.ts';
import { actorOf, requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { ErrorResponse, errorResponses, json } from '../http/schemas.ts';
import { formatRef } from '../models/model-ref.ts';
import { getDriftConfig, setDriftConfig } from './drift-config-service.ts';
import { rowsFromTensorDataset } from './tensor-reference.ts';
import { imagePredictions, imagePreprocessFor, rowsFromImageDataset } from './image-reference.ts';
import { parseJsonLines } from './json-lines.ts';
import { getReferenceProfile, MAX_REFERENCE_ROWS, rowsFromCsv, rowsFromDataset, setReferenceProfile, type ReferenceInputRow } from './reference-service.ts';

const MAX_BODY_BYTES = 256 * 1024 * 1024;

const Cell = z.union([z.number(), z.string(), z.boolean(), z.null()]);
const RowOutputs = z.object({
  predictedClass: z.union([z.number().int().nonnegative(), z.string()]).nullable().optional(),
  confidence: z.number().nullable().optional(),
  value: z.number().nullable().optional(),
});
const ReferenceRowSchema = z.object({ outputs: RowOutputs.optional() }).catchall(Cell);
const Options = z.object({
  bins: z.coerce.number().int().min(1).max(1000).optional(),
  /** Comma-separated column names (query) or an array (body). */
  categorical: z.union([z.string(), z.array(z.string())]).optional(),
  numClasses: z.coerce.number().int().min(1).max(100_000).optional(),
});
const ReferenceBody = z
  .union([
    z.array(ReferenceRowSchema).max(MAX_REFERENCE_ROWS),
    Options.extend({ rows: z.array(ReferenceRowSchema).max(MAX_REFERENCE_ROWS) }),
    Options.extend({
      dataset: z.string().min(1).openapi({ description: 'a stored dataset version (name@N): its feature columns; for an image dataset the image features devices compute per image; for a tensor dataset the summaries the `tensor` bundle definition names' }),
      preprocess: z.record(z.string(), z.unknown()).optional().openapi({ description: "image datasets, versions without a bundle: a bundle definition's image `preprocess` (default: the nearest bundle definition's)" }),
    }),
  ])
  .openapi('ReferenceDataset', { description: 'Rows (feature → value, plus optional outputs {predictedClass, confidence} or {value}), {rows, bins?, categorical?, numClasses?}, or {dataset: name@N, …}' });

const FeatureSummary = z.object({
  name: z.string(),
  kind: z.enum(['numeric', 'categorical']),
  count: z.number(),
  nulls: z.number(),
  bins: z.number().optional(),
  min: z.number().nullable().optional(),
  max: z.number().nullable().optional(),
  mean: z.number().optional(),
  std: z.number().optional(),
  categories: z.number().optional(),
});
const Reference = z
  .object({
    model: z.string(),
    rows: z.number(),
    bins: z.number(),
    source: z.string(),
    createdAt: z.string(),
    createdBy: z.string().nullable(),
    layout: z.record(z.string(), z.unknown()),
    features: z.array(FeatureSummary),
    sketch: z.record(z.string(), z.unknown()).optional(),
    devicesUpdated: z.number().optional().openapi({ description: 'At upload: devices whose signed manifest now carries this layout' }),
    warnings: z.array(z.string()).optional().openapi({ description: 'At upload: why this reference may be too small for a stable evaluation' }),
  })
  .openapi('ReferenceProfile');
const DriftConfigView = z
  .object({ model: z.string(), custom: z.boolean(), config: z.record(z.string(), z.unknown()), updatedAt: z.string().nullable(), updatedBy: z.string().nullable() })
  .openapi('DriftConfig');

const NameParam = z.object({ name: z.string().openapi({ param: { name: 'name', in: 'path' } }) });
const RefParam = NameParam.extend({ ref: z.string().openapi({ param: { name: 'ref', in: 'path' }, description: 'version number or alias' }) });
const refOf = (name: string, ref: string) => (/^[0-9]+$/.test(ref) ? formatRef(name, Number(ref)) : `${name}@${ref}`);

const list = (v: string | string[] | undefined) => (v === undefined ? undefined : (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean));

function fromJsonRows(rows: Array<z.infer<typeof ReferenceRowSchema>>): ReferenceInputRow[] {
  return rows.map(({ outputs, ...values }) => (outputs ? { values: values as ReferenceInputRow['values'], outputs } : { values: values as ReferenceInputRow['values'] }));
}

function fromJsonLines(text: string): ReferenceInputRow[] {
  const rows: Array<z.infer<typeof ReferenceRowSchema>> = [];
  for (const { line, value } of parseJsonLines(text)) {
    const r = ReferenceRowSchema.safeParse(value);
    if (!r.success) throw Invalid(`line ${line}: ${r.error.issues[0].path.join('.') || '(row)'}: ${r.error.issues[0].message}`);
    rows.push(r.data);
  }
  return fromJsonRows(rows);
}

export function referenceRoutes(db: Db, store: ArtifactStore, desired?: DesiredState) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('models:write'));
  return app
    .openapi(
      createRoute({
        method: 'post',
        path: '/{name}/versions/{ref}/reference',
        summary: 'Set the reference profile of a version from its reference dataset (JSON rows, JSON lines or CSV)',
        description:
          'Numeric columns get quantile bin edges (the bundle carries them as reference.bins), text columns become categorical. ' +
          'Outputs per row: JSON `outputs: {predictedClass, confidence}` or `{value}`; CSV columns `outputs.predictedClass`, `outputs.confidence`, `outputs.value`.',
        middleware: [
          bodyLimit({
            maxSize: MAX_BODY_BYTES,
            onError: () => {
              throw new ServiceError('payload_too_large', `reference datasets are limited to ${MAX_BODY_BYTES} bytes; sample the data`);
            },
          }),
        ] as const,
        request: {
          params: RefParam,
          query: Options,
          body: {
            content: {
              'application/json': { schema: ReferenceBody },
              'text/csv': { schema: z.string().openapi({ description: 'CSV with a header row' }) },
              'application/x-ndjson': { schema: z.string().openapi({ description: 'one JSON row per line' }) },
            },
          },
        },
        responses: { 201: json(Reference, 'Stored reference profile'), 413: json(ErrorResponse, 'Too large'), ...errorResponses },
      }),
      async (c) => {
        const { name, ref } = c.req.valid('param');
        const q = c.req.valid('query');
        const type = (c.req.header('content-type') ?? '').split(';')[0].trim().toLowerCase();
        let rows: ReferenceInputRow[];
        let options = { bins: q.bins, categorical: list(q.categorical), numClasses: q.numClasses };
        let source = 'json';
        if (type === 'text/csv') {
          rows = rowsFromCsv(await c.req.text());
          source = 'csv';
        } else if (type === 'application/x-ndjson') {
          rows = fromJsonLines(await c.req.text());
        } else if (type === 'application/json') {
          const body = c.req.valid('json') as z.infer<typeof ReferenceBody>;
          if (Array.isArray(body)) rows = fromJsonRows(body);
          else {
            if ('dataset' in body) {
              const data = await loadDataset(db, store, body.dataset);
              if (data.version.kind === 'images') {
                const { spec } = await imagePreprocessFor(db, refOf(name, ref), body.preprocess);
                rows = await rowsFromImageDataset(data, store, spec);
                // Prediction drift: the model's answers on the same images, as devices report them.
                // A model that cannot run on these pixels (it is no image model) gets an inputs-only reference.
                const predicted = await imagePredictions(db, store, refOf(name, ref), data, spec).catch(() => null);
                if (predicted) {
                  rows = rows.map((r, i) => ({ ...r, outputs: predicted.outputs[i] }));
                  if (body.numClasses === undefined && options.numClasses === undefined) options.numClasses = predicted.numClasses;
                }
              } else if (data.version.kind === 'tensors') {
                // A raw-tensor model: the definition's summaries per sample, the model run for output ones.
                const fromTensors = await rowsFromTensorDataset(db, store, refOf(name, ref), data);
                rows = fromTensors.rows;
                if (fromTensors.numClasses !== undefined && body.numClasses === undefined && options.numClasses === undefined) options.numClasses = fromTensors.numClasses;
              } else rows = rowsFromDataset(data);
              source = `dataset ${data.version.ref}`;
            } else rows = fromJsonRows(body.rows);
            options = { bins: body.bins ?? options.bins, categorical: list(body.categorical) ?? options.categorical, numClasses: body.numClasses ?? options.numClasses };
          }
        } else {
          throw new ServiceError('unsupported_media_type', 'send the reference dataset as application/json, application/x-ndjson or text/csv');
        }
        const { modelVersionId, ...view } = await setReferenceProfile(db, refOf(name, ref), { rows, source, options, actor: actorOf(c) });
        // Devices running a bundle of this version get the layout in a re-signed manifest: monitoring
        // starts (or follows a replaced reference) without a rebuild or redeploy.
        const resigned = desired ? await desired.resignVersion(modelVersionId) : [];
        return c.json({ ...view, devicesUpdated: resigned.length }, 201);
      },
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/{name}/versions/{ref}/reference',
        summary: 'The reference profile of a version (layout and per-feature summary; ?sketch=true adds the full sketch)',
        request: { params: RefParam, query: z.object({ sketch: z.enum(['true', 'false']).optional() }) },
        responses: { 200: json(Reference, 'Reference profile'), ...errorResponses },
      }),
      async (c) => {
        const { name, ref } = c.req.valid('param');
        return c.json(await getReferenceProfile(db, refOf(name, ref), { sketch: c.req.valid('query').sketch === 'true' }), 200);
      },
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/{name}/drift-config',
        summary: 'The drift settings of a model (the defaults when none were set)',
        request: { params: NameParam },
        responses: { 200: json(DriftConfigView, 'Drift settings'), ...errorResponses },
      }),
      async (c) => c.json(await getDriftConfig(db, c.req.valid('param').name), 200),
    )
    .openapi(
      createRoute({
        method: 'put',
        path: '/{name}/drift-config',
        summary: 'Set the drift settings of a model (protocol DriftConfig: methods, thresholds, per-feature overrides, minSamples, datasetThreshold)',
        request: { params: NameParam, body: { content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } }, required: true } },
        responses: { 200: json(DriftConfigView, 'Stored settings'), ...errorResponses },
      }),
      async (c) => c.json(await setDriftConfig(db, c.req.valid('param').name, c.req.valid('json'), actorOf(c)), 200),
    );
}
