// `flotilla history --device <id> | --cohort <name> | --model <name> [--at <time>]`: what served when.
import type { Command } from 'commander';
import { call, type Api } from '../api.ts';
import { CliError, emit, table, type Output, wholeNumber } from '../output.ts';

/**
 * `--at`: an ISO time, or `HH:MM[:SS]` meaning the latest such UTC time not in the future ("what served
 * at 03:10?" asked at 09:00 means today, asked at 02:00 means yesterday).
 */
export function parseAt(text: string, now = new Date()): string {
  const clock = /^(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(text.trim());
  if (clock) {
    const [h, m, s = '0'] = clock.slice(1).map((x) => x ?? '0');
    if (Number(h) > 23 || Number(m) > 59 || Number(s) > 59) throw new CliError(`invalid --at "${text}": hours 00-23, minutes and seconds 00-59`, 2);
    const t = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), Number(h), Number(m), Number(s)));
    if (t > now) t.setUTCDate(t.getUTCDate() - 1);
    return t.toISOString();
  }
  const t = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(t.getTime())) throw new CliError(`invalid --at "${text}": use an ISO time (2026-12-03T03:10:00Z) or HH:MM (UTC)`, 2);
  return t.toISOString();
}

export function registerHistoryCommands(program: Command, ctx: { api: () => Api; out: () => Output }) {
  program
    .command('history')
    .description('what served when: each device\'s model version and bundle, from when to when, through which deployment or rollout, started by whom')
    .option('--device <id>', 'one device')
    .option('--cohort <name>', "a cohort's devices (now, and every interval a deployment to it started)")
    .option('--model <name>', 'one model')
    .option('--at <time>', 'only what served at that moment: ISO time or HH:MM (UTC)')
    .option('--limit <n>', 'how many intervals, newest first', wholeNumber, '50')
    .option('--offset <n>', 'skip this many', '0')
    .action(async (o: { device?: string; cohort?: string; model?: string; at?: string; limit: string; offset: string }) => {
      if (!o.device && !o.cohort && !o.model) throw new CliError('give --device <id>, --cohort <name> or --model <name>', 2);
      const at = o.at === undefined ? undefined : parseAt(o.at);
      const res = await call(ctx.api().api.v1.history.$get({ query: { device: o.device, cohort: o.cohort, model: o.model, at, limit: o.limit, offset: o.offset } }));
      emit(ctx.out(), res, () => {
        const rows = res.intervals.map((i) => ({
          ...i,
          device: i.deviceName ? `${i.deviceId} (${i.deviceName})` : i.deviceId,
          version: `${i.model}@${i.version}`,
          to: i.to ?? 'now',
          through: i.deploymentId ? `${i.via} ${i.deploymentId}` : i.via,
          failure: i.lastFailure ? `${i.lastFailure.code}: ${i.lastFailure.message}` : null,
        }));
        const head = res.serving ? `serving at ${at}: ${res.serving.map((s) => `${s.model}@${s.version} (${s.bundleId}) on ${s.devices} device(s)`).join('; ') || 'nothing'}\n\n` : '';
        return head + table(rows, ['device', 'version', 'bundleId', 'from', 'to', 'through', 'startedBy', 'cohort', 'failure']);
      });
    });
}
