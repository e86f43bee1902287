// GET /artifacts/sha256/<hex>: content-addressed downloads with HTTP Range (resumable).
// Devices authenticate with Basic deviceId:secret and may fetch only files of their own desired
// bundle; people and tools use a bearer API token. Past FLOTILLA_ARTIFACT_MAX_DOWNLOADS responses
// streaming at once, a request is shed with 503 + Retry-After (download-gate.ts); a client that takes
// no bytes for FLOTILLA_ARTIFACT_IDLE_TIMEOUT_S is disconnected and its slot freed (idle-download.ts).
import type { IncomingMessage } from 'node:http';
import { Hono } from 'hono';
import { stream } from 'hono/streaming';
import { eq } from 'drizzle-orm';
import { authenticateApiToken } from '../auth/api-tokens.ts';
import type { Db } from '../db/client.ts';
import { artifacts, bundles, deviceDesired } from '../db/schema.ts';
import { Forbidden, NotFound, ServiceError } from '../errors.ts';
import type { ArtifactStore } from './artifact-store.ts';
import { errorBody } from '../http/errors.ts';
import type { DeviceAuthenticator } from './device-auth.ts';
import type { DownloadGate } from './download-gate.ts';
import { watchIdleDownload } from './idle-download.ts';
import type { Metrics } from '../metrics.ts';

function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | 'invalid' {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'invalid';
  if (m[1] === '') {
    const suffix = Math.min(Number(m[2]), size);
    return suffix === 0 ? 'invalid' : { start: size - suffix, end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  return start >= size || end < start ? 'invalid' : { start, end };
}

export function artifactRoutes(deps: { db: Db; store: ArtifactStore; deviceAuth: DeviceAuthenticator; gate?: DownloadGate; metrics?: Metrics }) {
  const { db, store, gate } = deps;
  const app = new Hono<{ Variables: { releaseDownload: () => void } }>();
  // Shed before any work (authentication reads the database): the answer reveals nothing.
  app.use('/sha256/:hex', async (c, next) => {
    const release = gate ? gate.tryEnter() : () => {};
    if (!release) {
      const { max, retryAfterS } = gate!;
      return c.json(errorBody('server_busy', `${max} artifact downloads are in progress; retry after ${retryAfterS} s`, { retryAfterS }), 503, { 'retry-after': String(retryAfterS) });
    }
    c.set('releaseDownload', release);
    try {
      await next();
    } finally {
      // A streamed body releases the slot itself when it ends; anything else (an error) here.
      if (!(c.res.body instanceof ReadableStream) || c.res.status >= 300) release();
    }
  });
  return app.get('/sha256/:hex', async (c) => {
    const release = c.get('releaseDownload');
    const hex = c.req.param('hex');
    store.pathOf(hex); // validates the id (400 on anything but 64 lowercase hex digits) before any lookup
    const auth = c.req.header('authorization') ?? '';
    if (auth.startsWith('Basic ')) {
      const [deviceId, ...rest] = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':');
      if (!(await deps.deviceAuth.check(deviceId, rest.join(':')))) throw new ServiceError('unauthorized', 'bad device credentials');
      const desired = await db.query.deviceDesired.findFirst({ where: eq(deviceDesired.deviceId, deviceId) });
      const bundle = desired ? await db.query.bundles.findFirst({ where: eq(bundles.id, desired.bundleId) }) : undefined;
      // The shadow candidate signed beside the bundle is part of the desired state too.
      const candidate = desired?.shadow ? await db.query.bundles.findFirst({ where: eq(bundles.id, desired.shadow.bundleId) }) : undefined;
      if (!bundle?.files.some((f) => f.sha256 === hex) && !candidate?.files.some((f) => f.sha256 === hex)) throw Forbidden('this artifact is not part of the device\'s desired bundle');
    } else if (auth.startsWith('Bearer ')) {
      if (!(await authenticateApiToken(db, auth.slice(7))).ok) throw new ServiceError('unauthorized', 'token not recognised or expired');
    } else {
      throw new ServiceError('unauthorized', 'artifacts need device (Basic) or API (Bearer) credentials');
    }
    const row = await db.query.artifacts.findFirst({ where: eq(artifacts.sha256, hex) });
    const size = row ? await store.size(hex) : null;
    if (!row || size === null) throw NotFound(`artifact ${hex}`);
    const range = parseRange(c.req.header('range'), size);
    if (range === 'invalid') {
      c.header('content-range', `bytes */${size}`);
      throw new ServiceError('range_not_satisfiable', `range not satisfiable for ${size} bytes`);
    }
    const { start, end } = range ?? { start: 0, end: size - 1 };
    c.header('accept-ranges', 'bytes');
    c.header('content-type', row.mediaType);
    c.header('content-length', String(end - start + 1));
    c.header('etag', `"${hex}"`);
    c.header('cache-control', 'private, max-age=31536000, immutable');
    if (range) {
      c.status(206);
      c.header('content-range', `bytes ${start}-${end}/${size}`);
    }
    // The Node request's socket (@hono/node-server puts it in the env): its progress is what the idle watch reads.
    const socket = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket;
    return stream(c, async (s) => {
      // The slot is held until the last byte is written, the client went away, or it took nothing for the idle timeout.
      const stopWatch =
        gate && socket
          ? watchIdleDownload(socket, gate.idleTimeoutS * 1000, () => {
              deps.metrics?.artifactDownloadsIdleClosed.inc();
              release();
              socket.destroy();
            })
          : () => {};
      try {
        for await (const chunk of store.readStream(hex, { start, end })) {
          if (s.aborted) break;
          await s.write(chunk as Uint8Array);
        }
      } finally {
        stopWatch();
        release();
      }
    });
  });
}
