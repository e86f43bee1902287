// /api/v1/enroll-tokens (operators) and /api/v1/enroll (devices, authenticated by the enrollment token itself).
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { DeviceBrokerAccess } from '../broker/device-broker-access.ts';
import type { Db } from '../db/client.ts';
import type { AppEnv } from '../http/app-env.ts';
import { actorOf, requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json, Labels, page, Pagination } from '../http/schemas.ts';
import { createEnrollToken, enrollDevice, listEnrollTokens, revokeEnrollToken } from './enroll-service.ts';
import { ENROLL_NONCE } from './enroll-nonce.ts';

const EnrollToken = z
  .object({
    id: z.string(),
    labels: z.record(z.string(), z.string()),
    autoApprove: z.boolean(),
    expiresAt: z.string().nullable(),
    maxUses: z.number().nullable(),
    uses: z.number(),
    createdAt: z.string(),
    createdBy: z.string().nullable(),
    revokedAt: z.string().nullable(),
  })
  .openapi('EnrollToken');

export function enrollTokenRoutes(db: Db) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('devices:write'));
  return app
    .openapi(
      createRoute({
        method: 'post',
        path: '/',
        summary: 'Create an enrollment token (the secret is shown once)',
        request: {
          body: {
            content: {
              'application/json': {
                schema: z.object({
                  labels: Labels.default({}),
                  ttlSeconds: z.number().int().positive().max(366 * 86400).optional(),
                  maxUses: z.number().int().positive().optional(),
                  autoApprove: z.boolean().default(true),
                }),
              },
            },
          },
        },
        responses: {
          201: json(z.object({ id: z.string(), token: z.string(), expiresAt: z.string().nullable(), maxUses: z.number().nullable(), labels: z.record(z.string(), z.string()), autoApprove: z.boolean() }), 'Created'),
          ...errorResponses,
        },
      }),
      async (c) => c.json(await db.transaction((tx) => createEnrollToken(tx, { ...c.req.valid('json'), actor: actorOf(c) })), 201),
    )
    .openapi(
      createRoute({ method: 'get', path: '/', summary: 'List enrollment tokens', request: { query: Pagination }, responses: { 200: json(z.object({ tokens: z.array(EnrollToken) }), 'Tokens'), ...errorResponses } }),
      async (c) => c.json({ tokens: page(await listEnrollTokens(db), c.req.valid('query')) }, 200),
    )
    .openapi(
      createRoute({
        method: 'delete',
        path: '/{id}',
        summary: 'Revoke an enrollment token',
        request: { params: z.object({ id: z.string() }) },
        responses: { 204: { description: 'Revoked' }, ...errorResponses },
      }),
      async (c) => {
        await revokeEnrollToken(db, c.req.valid('param').id, actorOf(c));
        return c.body(null, 204);
      },
    );
}

export const DeviceFactsSchema = z.object({
  arch: z.string().min(1).max(32),
  cpus: z.number().int().positive().max(4096),
  memoryBytes: z.number().int().positive(),
  os: z.string().min(1).max(128),
  agentVersion: z.string().regex(/^\d+\.\d+\.\d+/, 'semver x.y.z'),
  hostname: z.string().max(253).optional(),
});

export interface EnrollRoutesDeps {
  db: Db;
  urls(requestUrl: string): { mqttUrl: string; serverUrl: string; ca?: string };
  /** The trust root devices pin (null until `flotilla keys init`). */
  trustRoot(): Promise<{ rootKeyid: string; rootPublicKey: string } | null>;
  onDeviceChanged(id: string): Promise<void>;
  brokerAccess: DeviceBrokerAccess;
}

export function enrollRoutes(deps: EnrollRoutesDeps) {
  const { db } = deps;
  const app = new OpenAPIHono({ defaultHook: validationHook });
  return app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      summary: 'Enroll a device with an enrollment token; returns its id and MQTT credentials',
      request: {
        body: {
          content: { 'application/json': { schema: z.object({ token: z.string().min(1), facts: DeviceFactsSchema, name: z.string().max(128).optional(), nonce: z.string().regex(ENROLL_NONCE, '43–128 base64url characters (32 random bytes)').optional() }) } },
        },
      },
      responses: {
        201: json(
          z.object({
            deviceId: z.string(),
            status: z.enum(['pending', 'approved']),
            labels: z.record(z.string(), z.string()),
            mqtt: z.object({ url: z.string(), clientId: z.string(), username: z.string(), password: z.string() }),
            serverUrl: z.string(),
            trust: z.object({ rootKeyid: z.string(), rootPublicKey: z.string() }).nullable(),
            /** Present when the server is configured with FLOTILLA_TLS_CA: the CA the device pins for HTTPS and MQTT over TLS. */
            tls: z.object({ ca: z.string() }).optional(),
          }),
          'Enrolled',
        ),
        ...errorResponses,
      },
    }),
    async (c) => {
      const body = c.req.valid('json');
      // The broker learns the credentials before the device row is written: if it cannot, nothing is enrolled (503).
      const res = await enrollDevice(db, body, deps.brokerAccess);
      if (res.status === 'approved') await deps.onDeviceChanged(res.deviceId);
      const { mqttUrl, serverUrl, ca } = deps.urls(c.req.url);
      return c.json(
        {
          deviceId: res.deviceId,
          status: res.status,
          labels: res.labels,
          mqtt: { url: mqttUrl, clientId: res.deviceId, username: res.deviceId, password: res.secret },
          serverUrl,
          trust: await deps.trustRoot(),
          ...(ca ? { tls: { ca } } : {}),
        },
        201,
      );
    },
  );
}
