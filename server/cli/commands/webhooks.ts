// `flotilla webhooks add|ls|show|rm|test|deliveries`: event subscriptions delivered through the webhook outbox (admin).
import type { Command } from 'commander';
import { call, type Api } from '../api.ts';
import { CliError, emit, keyValues, table, type Output, wholeNumber } from '../output.ts';

export function registerWebhookCommands(program: Command, ctx: { api: () => Api; out: () => Output }) {
  const webhooks = program.command('webhooks').description('webhook subscriptions: events POSTed, signed, to a URL (admin)');
  webhooks
    .command('add <url>')
    .description('subscribe a URL to events; prints the signing secret once')
    .requiredOption('--events <list>', 'comma list: event types (rollout.paused, alert.opened, model.version_registered…), kind.* patterns, *, or rollout.started / job.finished')
    .option('--secret <secret>', 'HMAC secret (at least 16 characters); generated when omitted')
    .option('--description <text>')
    .action(async (url: string, o: { events: string; secret?: string; description?: string }) => {
      const events = o.events.split(',').map((e) => e.trim()).filter(Boolean);
      if (!events.length) throw new CliError('--events is empty: name at least one event, e.g. rollout.*', 2);
      const w = await call(ctx.api().api.v1.webhooks.$post({ json: { url, events, secret: o.secret, description: o.description } }));
      emit(ctx.out(), w, () => `${keyValues({ id: w.id, url: w.url, events: w.events.join(', '), secret: w.secret })}\n\nthe secret is shown only now: receivers check x-flotilla-signature = sha256=<HMAC-SHA256 of the body>`);
    });
  webhooks
    .command('ls', { isDefault: true })
    .description('list subscriptions')
    .option('--limit <n>', 'how many', wholeNumber, '100')
    .action(async (o: { limit: string }) => {
      const res = await call(ctx.api().api.v1.webhooks.$get({ query: { limit: o.limit } }));
      emit(ctx.out(), res.webhooks, () => table(res.webhooks.map((w) => ({ ...w, events: w.events.join(',') })), ['id', 'url', 'events', 'description', 'createdAt', 'createdBy']));
    });
  webhooks
    .command('show <id>')
    .description('one subscription (its secret is never shown again)')
    .action(async (id: string) => {
      const w = await call(ctx.api().api.v1.webhooks[':id'].$get({ param: { id } }));
      emit(ctx.out(), w, () => keyValues({ ...w, events: w.events.join(', ') }));
    });
  webhooks
    .command('rm <id>')
    .description('remove a subscription (and its delivery log)')
    .action(async (id: string) => {
      await call(ctx.api().api.v1.webhooks[':id'].$delete({ param: { id } }));
      emit(ctx.out(), { id, removed: true }, () => `removed webhook ${id}`);
    });
  webhooks
    .command('test <id>')
    .description('send a ping event to the subscription through the outbox')
    .action(async (id: string) => {
      const r = await call(ctx.api().api.v1.webhooks[':id'].test.$post({ param: { id } }));
      emit(ctx.out(), r, () => `ping queued as delivery ${r.deliveryId}: see \`flotilla webhooks deliveries ${id}\``);
    });
  webhooks
    .command('deliveries <id>')
    .description("a subscription's delivery log, newest first")
    .option('--status <status>', 'pending, delivered or failed')
    .option('--limit <n>', 'how many', wholeNumber, '50')
    .action(async (id: string, o: { status?: string; limit: string }) => {
      if (o.status && !['pending', 'delivered', 'failed'].includes(o.status)) throw new CliError(`invalid --status "${o.status}": pending, delivered or failed`, 2);
      const res = await call(ctx.api().api.v1.webhooks[':id'].deliveries.$get({ param: { id }, query: { status: o.status as 'pending' | undefined, limit: o.limit } }));
      emit(ctx.out(), res.deliveries, () => table(res.deliveries.map((d) => ({ ...d, 'next attempt': d.status === 'pending' ? d.nextAttemptAt : '-', 'last error': d.lastError })), ['id', 'event', 'status', 'attempts', 'createdAt', 'deliveredAt', 'next attempt', 'last error']));
    });
}
