// `flotilla events [--kind device,rollout] [--since <id>] [--follow]`: the event log, one line per event
// (--json: one JSON object per line). --follow keeps the stream open and resumes after the last id it
// printed when the connection drops, so nothing is lost or printed twice.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { call, type Api } from '../api.ts';
import { CliError, type Output, wholeNumber } from '../output.ts';
import { readSse } from '../sse.ts';

interface Event {
  id: number;
  type: string;
  at: string;
  subject: string;
  data: Record<string, unknown>;
}

function value(v: unknown): string {
  if (v !== null && typeof v === 'object') {
    if (Array.isArray(v)) return v.map(value).join(',');
    return Object.entries(v as Record<string, unknown>).map(([k, x]) => `${k}:${value(x)}`).join(',');
  }
  return String(v);
}

/** `2026-12-03T10:00:00.000Z  #12  device.update  dev_ab12  state=active bundleId=bnd_…` */
export function eventLine(e: Event): string {
  const data = Object.entries(e.data).map(([k, v]) => `${k}=${value(v)}`);
  return [e.at, `#${e.id}`, e.type.padEnd(22), e.subject, ...data].join('  ').trimEnd();
}

function idOf(text: string, what: string): string {
  if (!/^\d+$/.test(text)) throw new CliError(`invalid ${what} "${text}": an event id (a whole number)`, 2);
  return text;
}

export function registerEventCommands(program: Command, ctx: { api: () => Api; out: () => Output }) {
  program
    .command('events')
    .description('the event log: device presence and update states, deployments, rollouts, alerts, jobs, model versions')
    .option('--kind <kinds>', 'comma list of device, deployment, rollout, alert, job, model (default all)')
    .option('--since <id>', 'only events after this id (with --follow: replay from there, then live)')
    .option('--limit <n>', 'without --follow: how many of the newest events', wholeNumber, '50')
    .option('--follow', 'keep printing events as they happen (Ctrl-C to stop)')
    .action(async (o: { kind?: string; since?: string; limit: string; follow?: boolean }) => {
      const api = ctx.api();
      const print = (e: Event) => process.stdout.write((ctx.out().json ? JSON.stringify(e) : eventLine(e)) + '\n');
      const since = o.since === undefined ? undefined : idOf(o.since, '--since');
      if (!o.follow) {
        const r = await call(api.api.v1.events.recent.$get({ query: { kind: o.kind, since, limit: o.limit } }));
        for (const e of r.items) print(e);
        return;
      }
      let last = since;
      let failures = 0;
      for (;;) {
        let res: Response;
        try {
          res = await api.api.v1.events.$get({ query: { kind: o.kind }, header: last === undefined ? {} : { 'last-event-id': last } });
        } catch (err) {
          if (++failures > 10) throw new CliError(`cannot reach the server (${(err as Error).message}); check FLOTILLA_URL`);
          await sleep(Math.min(10_000, 500 * 2 ** failures));
          continue;
        }
        // A refusal (bad token, bad kind) is final: let call() turn it into the server's message.
        if (!res.ok) await call(Promise.resolve(res as never));
        failures = 0;
        try {
          for await (const item of readSse(res.body!)) {
            if (item.kind !== 'message') continue;
            const e = JSON.parse(item.data) as Event;
            last = String(e.id);
            print(e);
          }
        } catch {
          /* connection dropped: resume below */
        }
        await sleep(500);
      }
    });
}
