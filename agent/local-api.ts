// The local inference API (node:http, 127.0.0.1 by default): applications on the device post
// features, tensors or image bytes and get the active bundle's answer. Inference runs in the
// runtime's worker thread, so this event loop stays free for MQTT and updates. Bad input is a 4xx
// with `{ error: { code, message } }`; no active model is a 503 NO_MODEL.
//
// Plain node:http rather than hono: three routes do not need a router, and hono's Request/Response
// objects cost ≈ 0.5 ms and several KB of garbage per call here (agent/README.md, "Local API latency").
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { listenOnSocket } from './local-api-socket.ts';
import type { ModelRuntime, PredictInput } from './model-runtime.ts';

export interface LocalApiOptions {
  host: string;
  port: number;
  runtime: ModelRuntime;
  logger: Logger;
  /** What GET /v1/status shows (identity, active bundle, update state). */
  status(): unknown;
  maxBodyBytes?: number;
  /** Also listen on this Unix socket (`--api-socket`): same handler, no TCP stack (local-api-socket.ts). */
  socketPath?: string;
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

function send(res: ServerResponse, status: number, body: unknown): void {
  const json = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) }).end(json);
}

function fail(res: ServerResponse, status: ErrorStatus, code: string, message: string): void {
  send(res, status, { error: { code, message } });
}

class TooLarge extends Error {}

/** The request body, refused (TooLarge) past `max` bytes whether announced or streamed. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  if (Number(req.headers['content-length'] ?? 0) > max) return Promise.reject(new TooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.removeAllListeners('data');
        req.pause();
        reject(new TooLarge());
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
    req.on('error', reject);
  });
}

/** The request handler: GET /healthz, GET /v1/status, POST /v1/predict. */
export function createLocalHandler(opts: Omit<LocalApiOptions, 'host' | 'port'>): (req: IncomingMessage, res: ServerResponse) => void {
  const { runtime, logger } = opts;
  const maxBody = opts.maxBodyBytes ?? 16 * 1024 * 1024;

  async function predict(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    const audio = AUDIO_TYPES.has(type);
    const image = IMAGE_TYPES.has(type) || type === 'application/octet-stream';
    if (!audio && !image && type !== 'application/json' && type !== '') {
      return fail(res, 415, 'UNSUPPORTED_MEDIA_TYPE', `content type ${type} is not supported: send application/json, image bytes (image/jpeg, image/png, image/webp) or audio/wav`);
    }
    let bytes: Buffer;
    try {
      bytes = await readBody(req, maxBody);
    } catch (err) {
      if (!(err instanceof TooLarge)) throw err;
      res.setHeader('connection', 'close'); // the rest of the body is not read
      return fail(res, 413, 'TOO_LARGE', `request body over ${maxBody} bytes`);
    }
    let input: PredictInput;
    if (audio) {
      const id = req.headers['x-prediction-id'];
      const session = req.headers['x-session-id'];
      input = { audio: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), predictionId: typeof id === 'string' ? id : undefined, ...(typeof session === 'string' && session ? { session } : {}) };
    } else if (image) {
      if (bytes.length === 0) return fail(res, 400, 'INVALID_IMAGE', 'empty image body');
      const id = req.headers['x-prediction-id'];
      input = { image: bytes, predictionId: typeof id === 'string' ? id : undefined };
    } else {
      let body: unknown;
      try {
        body = JSON.parse(bytes.toString('utf8'));
      } catch {
        return fail(res, 400, 'INVALID_INPUT', 'body is not valid JSON');
      }
      const parsed = parseJsonInput(body);
      if (typeof parsed === 'string') return fail(res, 400, 'INVALID_INPUT', parsed);
      input = parsed;
    }
    if (runtime.active() === null) return fail(res, 503, 'NO_MODEL', 'no model is active on this device yet');
    const started = performance.now();
    try {
      const out = await runtime.predict(input);
      const { id, name, model, counter } = out.bundle;
      send(res, 200, { results: out.results, batch: out.batch, outputs: out.outputs, predictions: out.predictions, ...(out.detections !== undefined && { detections: out.detections }), bundle: { id, name, model, counter }, latencyMs: round3(performance.now() - started), runtimeMs: round3(out.latencyMs) });
    } catch (err) {
      const code = typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : 'INTERNAL';
      const status = STATUS_OF[code] ?? 500;
      if (code === 'NO_ACTIVE_MODEL') return fail(res, 503, 'NO_MODEL', 'no model is active on this device yet');
      if (status >= 500) logger.warn({ code, err: (err as Error).message }, 'inference failed');
      fail(res, status, code, (err as Error).message);
    }
  }

  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const route = `${req.method} ${path}`;
    let done: Promise<void> | undefined;
    try {
      if (route === 'POST /v1/predict') done = predict(req, res);
      else if (route === 'GET /healthz') send(res, 200, { ok: true, model: runtime.active() !== null });
      else if (route === 'GET /v1/status') send(res, 200, opts.status());
      else fail(res, 404, 'NOT_FOUND', `${req.method} ${path} is not a route`);
    } catch (err) {
      done = Promise.reject(err);
    }
    done?.catch((err: Error) => {
      logger.error({ err }, 'local API error');
      if (!res.headersSent) fail(res, 500, 'INTERNAL', err.message);
      else res.destroy();
    });
  };
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
  private socketServer?: Server;
  port = 0;

  constructor(private readonly opts: LocalApiOptions) {}

  async start(): Promise<void> {
    const server = createServer(createLocalHandler(this.opts));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.port = (server.address() as AddressInfo).port;
    if (this.opts.socketPath) {
      try {
        this.socketServer = await listenOnSocket(createServer(createLocalHandler(this.opts)), this.opts.socketPath);
      } catch (err) {
        await this.stop();
        throw err;
      }
    }
    this.opts.logger.info({ host: this.opts.host, port: this.port, socket: this.opts.socketPath }, 'local inference API listening');
  }

  async stop(): Promise<void> {
    const servers = [this.server, this.socketServer].filter((s): s is Server => s !== undefined);
    this.server = undefined;
    this.socketServer = undefined;
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), 2000).unref();
    })));
  }
}
