// Commands on `cmd` (ping, rollback), answered on `cmd/res` with the shared reply shape and the
// request's id. Expired or malformed commands are dropped (a device back from being offline must not
// replay stale orders); unknown ones get an error reply.
import type { Logger } from 'pino';
import { CommandRequest, type CommandResponse } from '../protocol/messages/command.ts';

export interface CommandDeps {
  logger: Logger;
  reply(message: CommandResponse): Promise<unknown>;
  ping(): unknown;
  rollback(): Promise<unknown>;
}

export class CommandHandler {
  /** Commands dropped as malformed or expired. */
  dropped = 0;
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly deps: CommandDeps) {}

  /** Never throws; handles commands one at a time in arrival order. */
  handle(payload: Buffer): void {
    this.chain = this.chain.then(() => this.run(payload)).catch((err) => this.deps.logger.error({ err }, 'command handling failed'));
  }

  private async run(payload: Buffer): Promise<void> {
    const { logger, reply } = this.deps;
    let json: unknown;
    try {
      json = JSON.parse(payload.toString('utf8'));
    } catch {
      this.dropped++;
      logger.warn('dropped a command that is not JSON');
      return;
    }
    const parsed = CommandRequest.safeParse(json);
    if (!parsed.success) {
      this.dropped++;
      const id = (json as { id?: unknown } | null)?.id;
      if (typeof id === 'string' && id.length > 0 && id.length <= 64) {
        await reply({ v: 1, id, status: 'error', error: { code: 'INVALID_COMMAND', message: parsed.error.issues[0]?.message ?? 'invalid command' } });
      }
      return;
    }
    const cmd = parsed.data;
    if (cmd.expiresAt && Date.parse(cmd.expiresAt) <= Date.now()) {
      this.dropped++;
      logger.info({ id: cmd.id, command: cmd.command }, 'dropped an expired command');
      return;
    }
    logger.info({ id: cmd.id, command: cmd.command }, 'command');
    try {
      let data: unknown;
      switch (cmd.command) {
        case 'ping':
          data = this.deps.ping();
          break;
        case 'rollback':
          data = await this.deps.rollback();
          break;
        default:
          await reply({ v: 1, id: cmd.id, status: 'error', error: { code: 'UNSUPPORTED', message: `command ${cmd.command} is not supported by this agent` } });
          return;
      }
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
