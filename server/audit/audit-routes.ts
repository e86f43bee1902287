// /api/v1/audit: the audit log, newest first.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Db } from '../db/client.ts';
import type { AppEnv } from '../http/app-env.ts';
import { requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json, Pagination } from '../http/schemas.ts';
import { listAudit } from './audit-log.ts';

const Entry = z.object({ id: z.number(), at: z.string(), actor: z.string(), action: z.string(), target: z.string(), details: z.unknown() }).openapi('AuditEntry');

export function auditRoutes(db: Db) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('admin', 'admin'));
  return app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      summary: 'Read the audit log',
      request: {
        query: z.object({
          ...Pagination.shape,
          actor: z.string().optional(),
          action: z.string().optional(),
          since: z.string().datetime({ offset: true }).optional(),
        }),
      },
      responses: { 200: json(z.object({ entries: z.array(Entry) }), 'Entries'), ...errorResponses },
    }),
    async (c) => c.json({ entries: await listAudit(db, c.req.valid('query')) }, 200),
  );
}
