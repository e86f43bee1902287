// /api/v1/me: who the bearer token is (name, role), so the console shows only the actions the role allows.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Db } from '../db/client.ts';
import type { AppEnv } from '../http/app-env.ts';
import { authenticate } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json } from '../http/schemas.ts';
import { ROLES } from './roles.ts';

export function sessionRoutes(db: Db) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', authenticate(db));
  return app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      summary: 'The caller: token id, name and role',
      responses: { 200: json(z.object({ tokenId: z.string(), name: z.string(), role: z.enum(ROLES) }), 'The caller'), ...errorResponses },
    }),
    (c) => {
      const p = c.get('principal');
      return c.json({ tokenId: p.tokenId, name: p.name, role: p.role }, 200);
    },
  );
}
