// /api/v1/keys: release keys and the root-signed key list (admin).
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Db } from '../db/client.ts';
import type { AppEnv } from '../http/app-env.ts';
import { actorOf, requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json } from '../http/schemas.ts';
import type { KeyCipher } from './key-cipher.ts';
import { keylistExpiry } from './key-expiry.ts';
import { createReleaseKey, currentKeyList, listReleaseKeys, uploadKeyList } from './key-service.ts';

const Envelope = z.object({ signed: z.record(z.string(), z.unknown()), signatures: z.array(z.object({ keyid: z.string(), sig: z.string() })) }).openapi('SignedEnvelope');

export interface KeyRoutesDeps {
  db: Db;
  cipher: KeyCipher;
  /** The warning horizon before the key list expires (FLOTILLA_KEYLIST_WARN_DAYS). */
  keylistWarnS: number;
  /** Called after a new key list is stored: re-signs and republishes every device's desired state. */
  onKeyListChanged(): Promise<void>;
}

export function keyRoutes(deps: KeyRoutesDeps) {
  const { db } = deps;
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('admin'));
  return app
    .openapi(
      createRoute({
        method: 'get',
        path: '/',
        summary: 'The current key list and the release keys this server holds',
        responses: {
          200: json(
            z.object({
              keylist: Envelope.nullable(),
              expiry: z.object({ version: z.number(), expiresAt: z.string(), expiresInS: z.number(), expired: z.boolean(), warning: z.string().nullable() }).nullable(),
              releaseKeys: z.array(z.object({ keyid: z.string(), publicKey: z.string(), createdAt: z.string(), retiredAt: z.string().nullable() })),
            }),
            'Keys',
          ),
          ...errorResponses,
        },
      }),
      async (c) => {
        const keylist = await currentKeyList(db);
        const expiry = keylist ? keylistExpiry(keylist.signed, new Date(), deps.keylistWarnS) : null;
        return c.json({ keylist: keylist as z.infer<typeof Envelope> | null, expiry, releaseKeys: await listReleaseKeys(db) }, 200);
      },
    )
    .openapi(
      createRoute({
        method: 'post',
        path: '/release',
        summary: 'Create a release key (it signs manifests once a root-signed key list names it)',
        responses: { 201: json(z.object({ keyid: z.string(), publicKey: z.string() }), 'Created'), ...errorResponses },
      }),
      async (c) => c.json(await createReleaseKey(db, deps.cipher, actorOf(c)), 201),
    )
    .openapi(
      createRoute({
        method: 'put',
        path: '/keylist',
        summary: 'Upload a root-signed key list (the next version); devices receive it with their desired state',
        request: { body: { content: { 'application/json': { schema: Envelope } } } },
        responses: { 200: json(z.object({ version: z.number(), keys: z.array(z.string()), threshold: z.number() }), 'Stored'), ...errorResponses },
      }),
      async (c) => {
        const list = await uploadKeyList(db, c.req.valid('json'), actorOf(c));
        await deps.onKeyListChanged();
        return c.json({ version: list.version, keys: list.keys.map((k) => k.keyid), threshold: list.threshold }, 200);
      },
    );
}
