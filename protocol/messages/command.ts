/**
 * `cmd` (server → device) and `cmd/res` (device → server). Every reply has one shape, carrying the
 * request's id: `{ status: 'ok', data }` or `{ status: 'error', error: { code, message } }`.
 *
 * @example
 * CommandRequest.parse({ v: 1, id: 'c1', command: 'ping' });
 * CommandResponse.parse({ v: 1, id: 'c1', status: 'ok', data: { pong: true } });
 */
import { z } from 'zod';

export const COMMANDS = ['ping', 'rollback', 'capture-samples', 'set-config'] as const;

export const CommandRequest = z.object({
  v: z.literal(1),
  id: z.string().min(1).max(64),
  command: z.enum(COMMANDS),
  args: z.record(z.string(), z.unknown()).default({}),
  /** Commands older than this are ignored (a device that was offline should not replay stale orders). */
  expiresAt: z.string().datetime({ offset: true }).optional(),
});
export type CommandRequest = z.infer<typeof CommandRequest>;

export const CommandResponse = z.discriminatedUnion('status', [
  z.object({ v: z.literal(1), id: z.string(), status: z.literal('ok'), data: z.unknown() }),
  z.object({ v: z.literal(1), id: z.string(), status: z.literal('error'), error: z.object({ code: z.string(), message: z.string() }) }),
]);
export type CommandResponse = z.infer<typeof CommandResponse>;
