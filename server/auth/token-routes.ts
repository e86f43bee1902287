// /api/v1/tokens: API tokens with roles (admin only).
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { recordAudit } from '../audit/audit-log.ts';
import type { Db } from '../db/client.ts';
import type { AppEnv } from '../http/app-env.ts';
import { actorOf, requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json, page, Pagination } from '../http/schemas.ts';
import { createApiToken, listApiTokens, revokeApiToken } from './api-tokens.ts';
import { ROLES } from './roles.ts';

const ApiToken = z
  .object({
    id: z.string(),
    name: z.string(),
    role: z.enum(ROLES),
    createdAt: z.string(),
    createdBy: z.string().nullable(),
    expiresAt: z.string().nullable(),
    revokedAt: z.string().nullable(),
    lastUsedAt: z.string().nullable(),
  })
  .openapi('ApiToken');

export function tokenRoutes(db: Db) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('admin', 'admin'));
  return app
    .openapi(
      createRoute({
        method: 'post',
        path: '/',
        summary: 'Create an API token with a role (the secret is shown once)',
        request: {
          body: {
            content: {
              'application/json': {
                schema: z.object({ name: z.string().min(1).max(100), role: z.enum(ROLES), ttlSeconds: z.number().int().positive().max(5 * 366 * 86400).optional() }),
              },
            },
          },
        },
        responses: { 201: json(z.object({ id: z.string(), token: z.string(), role: z.enum(ROLES), name: z.string(), expiresAt: z.string().nullable() }), 'Created'), ...errorResponses },
      }),
      async (c) => {
        const body = c.req.valid('json');
        const expiresAt = body.ttlSeconds ? new Date(Date.now() + body.ttlSeconds * 1000).toISOString() : null;
        const actor = actorOf(c);
        const created = await db.transaction(async (tx) => {
          const t = await createApiToken(tx, { name: body.name, role: body.role, expiresAt, createdBy: actor });
          await recordAudit(tx, actor, 'token.create', t.id, { name: body.name, role: body.role, expiresAt });
          return t;
        });
        return c.json({ ...created, role: body.role, name: body.name, expiresAt }, 201);
      },
    )
    .openapi(
      createRoute({ method: 'get', path: '/', summary: 'List API tokens', request: { query: Pagination }, responses: { 200: json(z.object({ tokens: z.array(ApiToken) }), 'Tokens'), ...errorResponses } }),
      async (c) => c.json({ tokens: page(await listApiTokens(db), c.req.valid('query')) }, 200),
    )
    .openapi(
      createRoute({ method: 'delete', path: '/{id}', summary: 'Revoke an API token', request: { params: z.object({ id: z.string() }) }, responses: { 204: { description: 'Revoked' }, ...errorResponses } }),
      async (c) => {
        const { id } = c.req.valid('param');
        await db.transaction(async (tx) => {
          await revokeApiToken(tx, id);
          await recordAudit(tx, actorOf(c), 'token.revoke', id);
        });
        return c.body(null, 204);
      },
    );
}
