/**
 * `cmd` (server → device) and `cmd/res` (device → server). Every reply has one shape, carrying the
 * request's id: `{ status: 'ok', data }` or `{ status: 'error', error: { code, message } }`.
 *
 * Commands are not signed, so whoever can publish on a device's `cmd` topic (a rogue or
 * misconfigured broker) can send them: a device accepts only the harmless ones
 * (`UNSIGNED_COMMANDS`: ping, report). Anything that changes what runs — a rollback included — is a
 * new signed deployment manifest on `desired`. Every command carries an id (a device accepts an id
 * once) and an expiry no further ahead than `MAX_COMMAND_TTL_MS`.
 *
 * @example
 * CommandRequest.parse({ v: 1, id: 'c1', command: 'ping', expiresAt: new Date(Date.now() + 10_000).toISOString() });
 * CommandResponse.parse({ v: 1, id: 'c1', status: 'ok', data: { pong: true } });
 */
import { z } from 'zod';

export const COMMANDS = ['ping', 'report', 'rollback', 'capture-samples', 'set-config'] as const;
export type CommandName = (typeof COMMANDS)[number];

/**
 * The commands a device runs without a signature: they read, they do not change what runs.
 *
 * @example
 * UNSIGNED_COMMANDS.has('rollback') // false: rollback is a signed manifest on `desired`
 */
export const UNSIGNED_COMMANDS: ReadonlySet<CommandName> = new Set(['ping', 'report']);

/**
 * How far ahead a command's expiry may lie; a device refuses one further out, which bounds how long
 * it must remember an id to refuse it a second time.
 *
 * @example
 * Date.parse(cmd.expiresAt) - Date.now() <= MAX_COMMAND_TTL_MS
 */
export const MAX_COMMAND_TTL_MS = 10 * 60_000;

export const CommandRequest = z.object({
  v: z.literal(1),
  id: z.string().min(1).max(64),
  command: z.enum(COMMANDS),
  args: z.record(z.string(), z.unknown()).default({}),
  /** Required: a command past it is dropped (a device back from being offline must not replay stale orders). */
  expiresAt: z.string().datetime({ offset: true }),
});
export type CommandRequest = z.infer<typeof CommandRequest>;

export const CommandResponse = z.discriminatedUnion('status', [
  z.object({ v: z.literal(1), id: z.string(), status: z.literal('ok'), data: z.unknown() }),
  z.object({ v: z.literal(1), id: z.string(), status: z.literal('error'), error: z.object({ code: z.string(), message: z.string() }) }),
]);
export type CommandResponse = z.infer<typeof CommandResponse>;
