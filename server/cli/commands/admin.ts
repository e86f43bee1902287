// `flotilla login|tokens|audit`: credentials and the audit trail.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { ROLES, type Role } from '../../auth/roles.ts';
import { call, type Api } from '../api.ts';
import type { CliConfig } from '../env.ts';
import { CliError, emit, keyValues, parseDuration, table, type Output, wholeNumber } from '../output.ts';

export function registerAdminCommands(program: Command, ctx: { api: () => Api; out: () => Output; config: () => CliConfig }) {
  program
    .command('login')
    .description('store the server URL and token for later commands')
    .requiredOption('--url <url>', 'control plane URL, e.g. http://127.0.0.1:8080')
    .requiredOption('--token <token>', 'API token')
    .action(async (o: { url: string; token: string }) => {
      const res = await fetch(new URL('/api/v1/models?limit=1', o.url), { headers: { authorization: `Bearer ${o.token}` } }).catch((err: Error) => {
        throw new CliError(`cannot reach ${o.url}: ${(err as { cause?: { code?: string } }).cause?.code ?? err.message}`);
      });
      if (res.status === 401) throw new CliError('the server rejected this token: check --token (the admin token the server printed at first start, or one from `flotilla tokens create`)');
      const file = ctx.config().configFile;
      await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      await writeFile(file, JSON.stringify({ url: o.url, token: o.token }) + '\n', { mode: 0o600 });
      emit(ctx.out(), { url: o.url, configFile: file }, () => `logged in to ${o.url} (saved to ${file})`);
    });

  const tokens = program.command('tokens').description('API tokens (admin)');
  tokens
    .command('create')
    .description('create an API token with a role (shown once)')
    .requiredOption('--role <role>', ROLES.join(' | '))
    .option('--name <name>', 'who or what uses it', 'cli')
    .option('--ttl <duration>', 'lifetime, e.g. 30d')
    .action(async (o: { role: string; name: string; ttl?: string }) => {
      if (!ROLES.includes(o.role as Role)) throw new CliError(`unknown role "${o.role}": use ${ROLES.join(', ')}`, 2);
      const res = await call(ctx.api().api.v1.tokens.$post({ json: { name: o.name, role: o.role as Role, ttlSeconds: o.ttl ? parseDuration(o.ttl) : undefined } }));
      emit(ctx.out(), res, () => `${keyValues({ id: res.id, name: res.name, role: res.role, expiresAt: res.expiresAt })}\n\ntoken (shown once): ${res.token}`);
    });
  tokens
    .command('ls')
    .description('list API tokens')
    .action(async () => {
      const res = await call(ctx.api().api.v1.tokens.$get({ query: {} }));
      emit(ctx.out(), res, () => table(res.tokens, ['id', 'name', 'role', 'createdAt', 'expiresAt', 'revokedAt']));
    });
  tokens
    .command('revoke <id>')
    .description('revoke an API token')
    .action(async (id: string) => {
      await call(ctx.api().api.v1.tokens[':id'].$delete({ param: { id } }));
      emit(ctx.out(), { revoked: id }, () => `revoked ${id}`);
    });

  program
    .command('audit')
    .description('read the audit log, newest first')
    .option('--limit <n>', 'entries', wholeNumber, '50')
    .option('--actor <actor>')
    .option('--action <action>', 'e.g. device.revoke')
    .action(async (o: { limit: string; actor?: string; action?: string }) => {
      const res = await call(ctx.api().api.v1.audit.$get({ query: { limit: o.limit, actor: o.actor, action: o.action } }));
      emit(ctx.out(), res, () => table(res.entries, ['at', 'actor', 'action', 'target', 'details']));
    });
}
