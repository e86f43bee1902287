// EMQX 5's HTTP authentication and authorization backends, answered by the control plane: an EMQX
// cluster then admits exactly the devices the database admits and confines each to its own topics,
// with the same rules as the embedded broker (device-acl.ts). EMQX is configured to POST
//   /mqtt/auth  {"clientid":"${clientid}","username":"${username}","password":"${password}"}
//   /mqtt/authz {"clientid":"${clientid}","username":"${username}","action":"${action}","topic":"${topic}"}
// with the header `Authorization: Bearer <FLOTILLA_MQTT_HOOK_TOKEN>` (deploy/README.md, step 3), and
// reads `{"result":"allow"|"deny"}` (200). Only approved devices pass, and their client id must equal
// their device id; the server's own client (FLOTILLA_MQTT_USERNAME/PASSWORD) is a superuser. A device
// is looked up on every authorization request (EMQX caches answers for a minute by default), so a
// revocation also stops a connected device's publishes and subscriptions.
import { createHash, timingSafeEqual } from 'node:crypto';
import { Hono } from 'hono';
import { z } from 'zod';
import { eq } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { devices } from '../db/schema.ts';
import { verifyDeviceCredentials } from '../devices/device-service.ts';
import { errorBody } from '../http/errors.ts';
import type { Metrics } from '../metrics.ts';
import { devicePublishAllowed, deviceSubscribeAllowed } from './device-acl.ts';

const AuthRequest = z.object({ clientid: z.string().max(256), username: z.string().max(256), password: z.string().max(1024) });
const AuthzRequest = z.object({ clientid: z.string().max(256), username: z.string().max(256), action: z.enum(['publish', 'subscribe', 'all']), topic: z.string().max(65_535) });

export interface EmqxHookOptions {
  db: Db;
  metrics: Metrics;
  /** The bearer token EMQX sends; the routes answer 404 while it is unset. */
  token?: string;
  server: { username: string; password: string };
}

function same(a: string, b: string): boolean {
  // Hashing first makes the comparison constant-time whatever the lengths.
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

export function emqxHookRoutes(opts: EmqxHookOptions) {
  const { db, metrics } = opts;
  const allow = { result: 'allow' as const, is_superuser: false };
  const deny = { result: 'deny' as const };
  const app = new Hono();
  app.use('*', async (c, next) => {
    if (!opts.token) return c.json(errorBody('not_found', 'the EMQX hooks are off (set FLOTILLA_MQTT_HOOK_TOKEN)'), 404);
    const bearer = /^Bearer\s+(\S+)$/i.exec(c.req.header('authorization') ?? '')?.[1];
    if (!bearer || !same(bearer, opts.token)) return c.json(errorBody('unauthorized', 'missing or wrong hook token'), 401);
    await next();
  });
  const body = async <S extends z.ZodType>(raw: Promise<unknown>, schema: S): Promise<z.infer<S> | string> => {
    const parsed = schema.safeParse(await raw.catch(() => undefined));
    return parsed.success ? parsed.data : (parsed.error.issues[0]?.message ?? 'invalid body');
  };
  return app
    .post('/auth', async (c) => {
      const req = await body(c.req.json(), AuthRequest);
      if (typeof req === 'string') return c.json(errorBody('invalid_request', req), 400);
      if (req.username === opts.server.username) {
        if (same(req.password, opts.server.password)) return c.json({ result: 'allow', is_superuser: true }, 200);
        metrics.mqttRefused.inc({ kind: 'auth' });
        return c.json(deny, 200);
      }
      // Pinning the client id to the device id stops one device from taking over another's session.
      const ok = req.clientid === req.username && (await verifyDeviceCredentials(db, req.username, req.password)) === 'ok';
      if (!ok) metrics.mqttRefused.inc({ kind: 'auth' });
      return c.json(ok ? allow : deny, 200);
    })
    .post('/authz', async (c) => {
      const req = await body(c.req.json(), AuthzRequest);
      if (typeof req === 'string') return c.json(errorBody('invalid_request', req), 400);
      if (req.username === opts.server.username) return c.json({ result: 'allow' }, 200); // authenticated as the server above
      const [row] = req.clientid === req.username ? await db.select({ status: devices.status }).from(devices).where(eq(devices.id, req.username)) : [];
      const approved = row?.status === 'approved';
      const permitted =
        approved &&
        (req.action === 'publish'
          ? devicePublishAllowed(req.username, req.topic)
          : req.action === 'subscribe'
            ? deviceSubscribeAllowed(req.username, req.topic)
            : devicePublishAllowed(req.username, req.topic) && deviceSubscribeAllowed(req.username, req.topic));
      if (!permitted) metrics.mqttRefused.inc({ kind: req.action === 'subscribe' ? 'subscribe' : 'publish' });
      return c.json(permitted ? { result: 'allow' } : deny, 200);
    });
}
