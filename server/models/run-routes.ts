// POST /api/v1/models/{name}/versions/{version}/run: one input through a version with onnxruntime-node
// on the server (the console's playground compares it with its in-browser answer). Inputs are checked
// against the version's declared inputs first, so a wrong name, type or shape is a 400 naming it.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import type { Db } from '../db/client.ts';
import { Invalid, ServiceError } from '../errors.ts';
import type { AppEnv } from '../http/app-env.ts';
import { requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json } from '../http/schemas.ts';
import type { TensorInfo } from '../onnx/inspect.ts';
import { formatRef } from './model-ref.ts';
import { type ModelRunner, TENSOR_TYPES, type TensorJson, type TensorType } from './model-runner.ts';
import { resolveVersion } from './model-service.ts';

/** Elements across all inputs: enough for a 3×1024×1024 image, small enough to keep a run bounded. */
export const MAX_RUN_ELEMENTS = 4_000_000;

const TensorIn = z.object({
  dims: z.array(z.number().int().min(0)).max(8),
  data: z.array(z.number()),
  type: z.enum(TENSOR_TYPES).optional().openapi({ description: "default: the input's declared type" }),
});
const TensorOut = z.object({ dims: z.array(z.number()), type: z.string(), data: z.array(z.union([z.number(), z.string()])) }).openapi('Tensor');

/** The feeds for `declared` inputs, or an Invalid naming what is wrong. */
export function checkInputs(declared: TensorInfo[], given: Record<string, z.infer<typeof TensorIn>>): Record<string, TensorJson> {
  const names = declared.map((d) => d.name);
  const unknown = Object.keys(given).filter((n) => !names.includes(n));
  if (unknown.length) throw Invalid(`unknown input(s) ${unknown.join(', ')}: the model takes ${names.join(', ')}`, { expected: names });
  const missing = names.filter((n) => !(n in given));
  if (missing.length) throw Invalid(`missing input(s) ${missing.join(', ')}`, { expected: declared });
  let total = 0;
  const feeds: Record<string, TensorJson> = {};
  for (const d of declared) {
    const t = given[d.name];
    const declaredType = (TENSOR_TYPES as readonly string[]).includes(d.dtype) ? (d.dtype as TensorType) : null;
    if (!declaredType) throw Invalid(`input ${d.name} is ${d.dtype}, which the run endpoint does not take (it takes ${TENSOR_TYPES.join(', ')})`);
    if (t.type && t.type !== declaredType) throw Invalid(`input ${d.name} is ${declaredType}, not ${t.type}`);
    const size = t.dims.reduce((a, b) => a * b, 1);
    if (size !== t.data.length) throw Invalid(`input ${d.name}: dims [${t.dims.join(', ')}] hold ${size} values, data has ${t.data.length}`);
    if (d.shape.length && t.dims.length !== d.shape.length) throw Invalid(`input ${d.name} has ${d.shape.length} dimensions [${d.shape.map((x) => x ?? '?').join(', ')}], not ${t.dims.length}`);
    d.shape.forEach((want, i) => {
      if (typeof want === 'number' && t.dims[i] !== want) throw Invalid(`input ${d.name}: dimension ${i} must be ${want}, not ${t.dims[i]} (shape [${d.shape.map((x) => x ?? '?').join(', ')}])`);
    });
    total += size;
    feeds[d.name] = { dims: t.dims, data: t.data, type: declaredType };
  }
  if (total > MAX_RUN_ELEMENTS) throw new ServiceError('payload_too_large', `${total} input values; at most ${MAX_RUN_ELEMENTS} per run`);
  return feeds;
}

export function runRoutes(deps: { db: Db; store: ArtifactStore; runner: ModelRunner }) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  // Runs use the server's CPU: the same role as the other model actions (ml-engineer, admin).
  app.use('*', requireRole('models:write'));
  // JSON numbers are ~10 bytes each: room for MAX_RUN_ELEMENTS, refused early beyond.
  app.use('/:name/versions/:version/run', bodyLimit({ maxSize: 64 * 1024 * 1024, onError: () => { throw new ServiceError('payload_too_large', 'request body over 64 MB'); } }));
  return app.openapi(
    createRoute({
      method: 'post',
      path: '/{name}/versions/{version}/run',
      summary: 'Run a model version on one input (onnxruntime-node on the server, off the event loop)',
      description: 'Inputs by name with dims, row-major data and optionally their type (checked against the declared inputs). Outputs come back the same way; int64 values as numbers.',
      request: {
        params: z.object({ name: z.string(), version: z.string().openapi({ description: 'version number or alias' }) }),
        body: { content: { 'application/json': { schema: z.object({ inputs: z.record(z.string(), TensorIn) }) } }, required: true },
      },
      responses: { 200: json(z.object({ model: z.string(), outputs: z.record(z.string(), TensorOut), latencyMs: z.number() }), 'Outputs'), ...errorResponses },
    }),
    async (c) => {
      const { name, version } = c.req.valid('param');
      const v = await resolveVersion(deps.db, /^[0-9]+$/.test(version) ? formatRef(name, Number(version)) : `${name}@${version}`);
      const feeds = checkInputs(v.inputs as TensorInfo[], c.req.valid('json').inputs);
      // The runner loads one stored file by its hash; side files are stored by theirs, not beside it.
      if (v.facts?.externalData?.length) throw Invalid(`${formatRef(v.modelName, v.version)} keeps its weights in external data files (${v.facts.externalData.map((f) => f.path).join(', ')}), which a server-side run does not load: deploy it to a device, or run its optimized (self-contained) variant`, { externalData: v.facts.externalData });
      const r = await deps.runner.run({ sha256: v.artifactSha256, file: deps.store.pathOf(v.artifactSha256), inputs: feeds });
      return c.json({ model: formatRef(v.modelName, v.version), outputs: r.outputs, latencyMs: r.latencyMs }, 200);
    },
  );
}
