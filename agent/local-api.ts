// The local inference API (hono, 127.0.0.1 by default): applications on the device post features,
// tensors or image bytes and get the active bundle's answer. Inference runs in the runtime's worker
// thread, so this event loop stays free for MQTT and updates. Bad input is a 4xx with
// `{ error: { code, message } }`; no active model is a 503 NO_MODEL.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Logger } from 'pino';
import type { ModelRuntime, PredictInput } from './model-runtime.ts';

export interface LocalApiOptions {
  host: string;
  port: number;
  runtime: ModelRuntime;
  logger: Logger;
  /** What GET /v1/status shows (identity, active bundle, update state). */
  status(): unknown;
  maxBodyBytes?: number;
}

type ErrorStatus = 400 | 404 | 413 | 415 | 422 | 500 | 503;

/** HTTP status of each runtime error code; unknown codes are the server's fault (500). */
const STATUS_OF: Record<string, ErrorStatus> = {
  INVALID_INPUT: 400,
  INVALID_IMAGE: 400,
  BUNDLE_MISMATCH: 422,
  NO_ACTIVE_MODEL: 503,
  NOT_RUNNING: 503,
  WORKER_CRASHED: 503,
  INFERENCE_FAILED: 500,
};

const AUDIO_TYPES = new Set(['audio/wav', 'audio/x-wav', 'audio/wave', 'audio/vnd.wave']);
const IMAGE_TYPES = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/tiff', 'image/avif']);

const round3 = (n: number) => Math.round(n * 1000) / 1000;

function fail(c: Context, status: ErrorStatus, code: string, message: string) {
  return c.json({ error: { code, message } }, status);
}

export function createLocalApp(opts: Omit<LocalApiOptions, 'host' | 'port'>) {
  const { runtime, logger } = opts;
  const maxBody = opts.maxBodyBytes ?? 16 * 1024 * 1024;
  const app = new Hono();
  app.onError((err, c) => {
    logger.error({ err }, 'local API error');
    return fail(c, 500, 'INTERNAL', err.message);
  });
  app.notFound((c) => fail(c, 404, 'NOT_FOUND', `${c.req.method} ${c.req.path} is not a route`));
  return app
    .get('/healthz', (c) => c.json({ ok: true, model: runtime.active() !== null }))
    .get('/v1/status', (c) => c.json(opts.status() as Record<string, unknown>))
    .post(
      '/v1/predict',
      bodyLimit({ maxSize: maxBody, onError: (c) => fail(c, 413, 'TOO_LARGE', `request body over ${maxBody} bytes`) }),
      async (c) => {
        const type = (c.req.header('content-type') ?? '').split(';')[0].trim().toLowerCase();
        let input: PredictInput;
        if (AUDIO_TYPES.has(type)) {
          const bytes = new Uint8Array(await c.req.arrayBuffer());
          const session = c.req.header('x-session-id');
          input = { audio: bytes, predictionId: c.req.header('x-prediction-id'), ...(session ? { session } : {}) };
        } else if (IMAGE_TYPES.has(type) || type === 'application/octet-stream') {
          const bytes = new Uint8Array(await c.req.arrayBuffer());
          if (bytes.length === 0) return fail(c, 400, 'INVALID_IMAGE', 'empty image body');
          input = { image: bytes, predictionId: c.req.header('x-prediction-id') };
        } else if (type === 'application/json' || type === '') {
          let body: unknown;
          try {
            body = await c.req.json();
          } catch {
            return fail(c, 400, 'INVALID_INPUT', 'body is not valid JSON');
          }
          const parsed = parseJsonInput(body);
          if (typeof parsed === 'string') return fail(c, 400, 'INVALID_INPUT', parsed);
          input = parsed;
        } else {
          return fail(c, 415, 'UNSUPPORTED_MEDIA_TYPE', `content type ${type} is not supported: send application/json, image bytes (image/jpeg, image/png, image/webp) or audio/wav`);
        }
        if (runtime.active() === null) return fail(c, 503, 'NO_MODEL', 'no model is active on this device yet');
        const started = performance.now();
        try {
          const out = await runtime.predict(input);
          const { id, name, model, counter } = out.bundle;
          return c.json({ outputs: out.outputs, predictions: out.predictions, bundle: { id, name, model, counter }, latencyMs: round3(performance.now() - started), runtimeMs: round3(out.latencyMs) });
        } catch (err) {
          const code = typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : 'INTERNAL';
          const status = STATUS_OF[code] ?? 500;
          if (code === 'NO_ACTIVE_MODEL') return fail(c, 503, 'NO_MODEL', 'no model is active on this device yet');
          if (status >= 500) logger.warn({ code, err: (err as Error).message }, 'inference failed');
          return fail(c, status, code, (err as Error).message);
        }
      },
    );
}

/**
 * Accepts `{ features }` (object, array of values, or array of objects), `{ inputs: { name: { dims,
 * data } } }`, or `{ image: base64 | [base64, ...] }`, each with an optional `predictionId` (kept with a
 * captured sample; image bytes bring it in `x-prediction-id`) and `session` (stateful tensor bundles:
 * the agent carries the state per session). The runtime checks the contents against the model.
 */
function parseJsonInput(body: unknown): PredictInput | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'body must be a JSON object with "features", "inputs" or "image"';
  const b = body as Record<string, unknown>;
  const kinds = (['features', 'inputs', 'image'] as const).filter((k) => b[k] !== undefined);
  if (kinds.length !== 1) return `body needs exactly one of "features", "inputs" or "image" (got ${kinds.length ? kinds.join(', ') : 'none'}); or send image bytes with an image/* content type`;
  const kind = kinds[0];
  if (kind === 'features' && (typeof b.features !== 'object' || b.features === null)) return '"features" must be an object, an array of values, or an array of objects';
  if (kind === 'inputs' && (typeof b.inputs !== 'object' || b.inputs === null || Array.isArray(b.inputs))) return '"inputs" must be an object of { name: { dims, data } }';
  if (b.session !== undefined && (typeof b.session !== 'string' || b.session.length === 0 || b.session.length > 200)) return '"session" must be a non-empty string (at most 200 characters)';
  return { [kind]: b[kind], ...(typeof b.predictionId === 'string' ? { predictionId: b.predictionId } : {}), ...(typeof b.session === 'string' ? { session: b.session } : {}) } as PredictInput;
}

export class LocalApi {
  private server?: Server;
  port = 0;

  constructor(private readonly opts: LocalApiOptions) {}

  async start(): Promise<void> {
    const app = createLocalApp(this.opts);
    await new Promise<void>((resolve, reject) => {
      this.server = serve({ fetch: app.fetch, port: this.opts.port, hostname: this.opts.host }, () => resolve()) as Server;
      this.server.once('error', reject);
    });
    this.port = (this.server!.address() as AddressInfo).port;
    this.opts.logger.info({ host: this.opts.host, port: this.port }, 'local inference API listening');
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections?.();
      setTimeout(() => server.closeAllConnections?.(), 2000).unref();
    });
    this.server = undefined;
  }
}
