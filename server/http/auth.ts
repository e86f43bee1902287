// Bearer-token authentication and role checks for /api/v1.
import type { MiddlewareHandler } from 'hono';
import { authenticateApiToken } from '../auth/api-tokens.ts';
import { allows, type Permission } from '../auth/roles.ts';
import type { Db } from '../db/client.ts';
import { Forbidden, ServiceError } from '../errors.ts';
import type { AppEnv } from './app-env.ts';

export function authenticate(db: Db): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) throw new ServiceError('unauthorized', 'missing bearer token: set Authorization: Bearer <token> (FLOTILLA_TOKEN for the CLI)');
    const check = await authenticateApiToken(db, match[1]);
    if (!check.ok) {
      const why = { unknown: 'token not recognised', expired: 'token expired', revoked: 'token revoked' }[check.reason];
      throw new ServiceError('unauthorized', `${why}: create a new one with \`flotilla tokens create\``);
    }
    c.set('principal', check.principal);
    await next();
  };
}

/** GET/HEAD need `read`; every other method needs `write` (the resource's write permission). */
export function requireRole(write: Permission, read: Permission = 'read'): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const needed = c.req.method === 'GET' || c.req.method === 'HEAD' ? read : write;
    const principal = c.get('principal');
    if (!allows(principal.role, needed)) {
      throw Forbidden(`role "${principal.role}" may not ${needed === 'read' ? 'read this resource' : `do this (needs ${needed})`}`, {
        role: principal.role,
        needed,
      });
    }
    await next();
  };
}

export function actorOf(c: { get(key: 'principal'): { name: string; tokenId: string } }): string {
  const p = c.get('principal');
  return `${p.name} (${p.tokenId})`;
}
