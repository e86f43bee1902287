// `flotilla whoami`: which token the CLI uses and its role (what it may do).
import type { Command } from 'commander';
import { call, type Api } from '../api.ts';
import { emit, keyValues, type Output } from '../output.ts';

export function registerWhoamiCommand(program: Command, ctx: { api: () => Api; out: () => Output }) {
  program
    .command('whoami')
    .description('the token this CLI uses: id, name and role')
    .action(async () => {
      const me = await call(ctx.api().api.v1.me.$get());
      emit(ctx.out(), me, () => keyValues(me as Record<string, unknown>));
    });
}
