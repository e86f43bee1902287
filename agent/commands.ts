// Commands on `cmd`, answered on `cmd/res` with the shared reply shape and the request's id.
// Commands are unsigned, so only harmless ones run (protocol UNSIGNED_COMMANDS: ping, report); a
// rollback or anything else that would change what runs is refused — it comes as a signed manifest
// on `desired` instead. Every command needs an expiry (no further ahead than MAX_COMMAND_TTL_MS) and
// an id not seen before; malformed, expired and replayed commands are dropped and counted.
import path from 'node:path';
import type { Logger } from 'pino';
import { CommandRequest, MAX_COMMAND_TTL_MS, UNSIGNED_COMMANDS, type CommandResponse } from '../protocol/messages/command.ts';
import { SEEN_COMMANDS_FILE, SeenCommandIds } from './seen-command-ids.ts';

export interface CommandDeps {
  logger: Logger;
  /** Where the seen ids persist (the agent's data dir). */
  dataDir: string;
  reply(message: CommandResponse): Promise<unknown>;
  ping(): unknown;
  /** Publishes `reported` again and returns it. */
  report(): unknown;
}

export type DropReason = 'malformed' | 'expired' | 'replayed';

export class CommandHandler {
  /** Commands dropped as malformed, expired or replayed. */
  dropped = 0;
  readonly droppedBy: Record<DropReason, number> = { malformed: 0, expired: 0, replayed: 0 };
  private chain: Promise<void> = Promise.resolve();
  private readonly seen = new SeenCommandIds();
  private readonly file: string;
  private loaded: Promise<void> | null = null;

  constructor(private readonly deps: CommandDeps) {
    this.file = path.join(deps.dataDir, SEEN_COMMANDS_FILE);
  }

  /** Never throws; handles commands one at a time in arrival order. */
  handle(payload: Buffer): void {
    this.chain = this.chain.then(() => this.run(payload)).catch((err) => this.deps.logger.error({ err }, 'command handling failed'));
  }

  private drop(reason: DropReason, msg: string, extra: Record<string, unknown> = {}): void {
    this.dropped++;
    this.droppedBy[reason]++;
    this.deps.logger.warn({ reason, ...extra }, msg);
  }

  private async run(payload: Buffer): Promise<void> {
    const { reply } = this.deps;
    this.loaded ??= this.seen.load(this.file);
    await this.loaded;
    let json: unknown;
    try {
      json = JSON.parse(payload.toString('utf8'));
    } catch {
      return this.drop('malformed', 'dropped a command that is not JSON');
    }
    const parsed = CommandRequest.safeParse(json);
    if (!parsed.success) {
      this.drop('malformed', 'dropped a malformed command');
      const id = (json as { id?: unknown } | null)?.id;
      if (typeof id === 'string' && id.length > 0 && id.length <= 64) {
        await reply({ v: 1, id, status: 'error', error: { code: 'INVALID_COMMAND', message: parsed.error.issues[0]?.message ?? 'invalid command' } });
      }
      return;
    }
    const cmd = parsed.data;
    const now = Date.now();
    const expires = Date.parse(cmd.expiresAt);
    if (expires <= now) return this.drop('expired', 'dropped an expired command', { id: cmd.id, command: cmd.command });
    if (expires - now > MAX_COMMAND_TTL_MS) {
      this.drop('malformed', 'dropped a command whose expiry is too far ahead', { id: cmd.id, command: cmd.command });
      await reply({ v: 1, id: cmd.id, status: 'error', error: { code: 'EXPIRY_TOO_FAR', message: `a command may expire at most ${MAX_COMMAND_TTL_MS / 1000} s ahead` } });
      return;
    }
    const verdict = this.seen.admit(cmd.id, expires, now);
    if (verdict === 'replay') return this.drop('replayed', 'dropped a command id seen before', { id: cmd.id, command: cmd.command });
    if (verdict === 'full') {
      await reply({ v: 1, id: cmd.id, status: 'error', error: { code: 'BUSY', message: 'too many unexpired commands; try again later' } });
      return;
    }
    await this.seen.save(this.file).catch((err) => this.deps.logger.warn({ err }, 'could not persist seen command ids'));
    this.deps.logger.info({ id: cmd.id, command: cmd.command }, 'command');
    if (!UNSIGNED_COMMANDS.has(cmd.command)) {
      const message =
        cmd.command === 'rollback'
          ? 'rollback is not accepted as an unsigned command: the server rolls back by signing a new manifest for the previous bundle (flotilla devices rollback)'
          : `command ${cmd.command} is not supported unsigned by this agent`;
      this.deps.logger.warn({ id: cmd.id, command: cmd.command }, 'refused a command that is not allowed unsigned');
      await reply({ v: 1, id: cmd.id, status: 'error', error: { code: 'SIGNED_ONLY', message } });
      return;
    }
    try {
      const data = cmd.command === 'ping' ? this.deps.ping() : this.deps.report();
      await reply({ v: 1, id: cmd.id, status: 'ok', data });
    } catch (err) {
      const code = typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : 'FAILED';
      await reply({ v: 1, id: cmd.id, status: 'error', error: { code, message: (err as Error).message } });
    }
  }

  async stop(): Promise<void> {
    await this.chain.catch(() => {});
  }
}
