// /api/v1/events: the live event stream (Server-Sent Events) and the recent events as JSON.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { streamSSE } from 'hono/streaming';
import type { Db } from '../db/client.ts';
import { Invalid } from '../errors.ts';
import type { AppEnv } from '../http/app-env.ts';
import { requireRole } from '../http/auth.ts';
import { validationHook } from '../http/errors.ts';
import { errorResponses, json } from '../http/schemas.ts';
import type { EventFeed } from './event-feed.ts';
import { recentEvents } from './event-log.ts';
import { Event, KindList } from './event-types.ts';

const Since = z.coerce.number().int().min(0).optional().openapi({ description: 'resume after this event id (as the Last-Event-ID header)' });

const STREAM_DESCRIPTION = `A \`text/event-stream\`: each message has \`id\` (the event id), \`event\` (its kind) and \`data\` (the Event as JSON);
a \`: keep-alive\` comment is sent when nothing happened for a while. Without \`since\` or \`Last-Event-ID\` the stream starts
now; with one, it first replays every kept event after that id. Events expire after the retention (FLOTILLA_EVENTS_RETENTION_DAYS).`;

export function eventRoutes(deps: { db: Db; feed: EventFeed }) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('admin'));
  return app
    .openapi(
      createRoute({
        method: 'get',
        path: '/',
        summary: 'Follow the event stream (Server-Sent Events)',
        description: STREAM_DESCRIPTION,
        request: {
          query: z.object({ kind: KindList, since: Since }),
          headers: z.object({ 'last-event-id': z.string().optional().openapi({ description: 'resume after this id (wins over since)' }) }),
        },
        responses: { 200: { description: 'The event stream (text/event-stream)' }, ...errorResponses },
      }),
      async (c) => {
        const { kind, since } = c.req.valid('query');
        const header = c.req.valid('header')['last-event-id'];
        if (header !== undefined && !/^\d+$/.test(header.trim())) throw Invalid(`Last-Event-ID must be an event id (a whole number), not "${header}"`);
        const after = header !== undefined ? Number(header.trim()) : since;
        return streamSSE(c, async (stream) => {
          const aborted = new AbortController();
          stream.onAbort(() => aborted.abort());
          for await (const item of deps.feed.follow({ kinds: kind, after, signal: aborted.signal })) {
            if (item === 'keep-alive') await stream.write(': keep-alive\n\n');
            else for (const e of item) await stream.writeSSE({ id: String(e.id), event: e.kind, data: JSON.stringify(e) });
          }
        });
      },
    )
    .openapi(
      createRoute({
        method: 'get',
        path: '/recent',
        summary: 'The newest events (oldest first), optionally after an id',
        request: { query: z.object({ kind: KindList, since: Since, limit: z.coerce.number().int().min(1).max(1000).default(100) }) },
        responses: { 200: json(z.object({ items: z.array(Event) }), 'Events, oldest first'), ...errorResponses },
      }),
      async (c) => {
        const q = c.req.valid('query');
        return c.json({ items: await recentEvents(deps.db, { kinds: q.kind, afterId: q.since, limit: q.limit }) }, 200);
      },
    );
}
