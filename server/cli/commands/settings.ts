// `flotilla settings set|show|rm`: agent settings (telemetry interval, stats window, sample capture) per
// cohort or device. They travel in the signed manifest, so a change re-signs the affected devices'.
import { InvalidArgumentError, type Command } from 'commander';
import { call, type Api } from '../api.ts';
import { CliError, emit, keyValues, parseDuration, table, type Output } from '../output.ts';

type Target = { scope: 'cohort' | 'device'; target: string };
type Settings = { telemetryIntervalS?: number; statsWindowS?: number; sampleCapture?: { enabled?: boolean; maxPerMinute?: number; batchSize?: number } };

function targetOf(o: { cohort?: string; device?: string }, required: boolean): Target | null {
  if (o.cohort && o.device) throw new CliError('give --cohort or --device, not both', 2);
  if (o.cohort) return { scope: 'cohort', target: o.cohort };
  if (o.device) return { scope: 'device', target: o.device };
  if (required) throw new CliError('give --cohort <name> or --device <id>', 2);
  return null;
}

function count(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer (1, 2, …)');
  return n;
}

function onOff(v: string): boolean {
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw new CliError(`--capture takes on or off, got "${v}"`, 2);
}

const captureText = (c?: Settings['sampleCapture']) =>
  c ? [c.enabled === undefined ? null : c.enabled ? 'on' : 'off', c.maxPerMinute === undefined ? null : `${c.maxPerMinute}/min`, c.batchSize === undefined ? null : `batch ${c.batchSize}`].filter(Boolean).join(', ') : '-';

const settingsRow = (s: Settings) => ({
  telemetry: s.telemetryIntervalS === undefined ? '-' : `${s.telemetryIntervalS}s`,
  stats: s.statsWindowS === undefined ? '-' : `${s.statsWindowS}s`,
  capture: captureText(s.sampleCapture),
});

export function registerSettingsCommands(program: Command, ctx: { api: () => Api; out: () => Output }) {
  const settings = program.command('settings').description('agent settings per cohort or device (signed into the devices\' manifests)');
  const endpoint = () => ctx.api().api.v1['agent-settings'][':scope'][':target'];

  settings
    .command('set')
    .description('change settings of a cohort or a device (flags not given keep their stored value)')
    .option('--cohort <name>', 'a cohort')
    .option('--device <id>', 'a device (overrides its cohort)')
    .option('--telemetry-interval <duration>', 'seconds between telemetry messages, e.g. 10s, 1m')
    .option('--stats-window <duration>', 'length of a statistics window, e.g. 60s, 5m')
    .option('--capture <on|off>', 'opt-in sample capture (inputs + outputs uploaded in batches)', onOff)
    .option('--capture-rate <n>', 'most samples kept per minute', count)
    .option('--capture-batch <n>', 'samples per upload', count)
    .action(async (o: { cohort?: string; device?: string; telemetryInterval?: string; statsWindow?: string; capture?: boolean; captureRate?: number; captureBatch?: number }) => {
      const t = targetOf(o, true)!;
      const change: Settings = {};
      if (o.telemetryInterval !== undefined) change.telemetryIntervalS = parseDuration(o.telemetryInterval);
      if (o.statsWindow !== undefined) change.statsWindowS = parseDuration(o.statsWindow);
      const capture = Object.fromEntries(Object.entries({ enabled: o.capture, maxPerMinute: o.captureRate, batchSize: o.captureBatch }).filter(([, v]) => v !== undefined));
      if (Object.keys(capture).length) change.sampleCapture = capture;
      if (!Object.keys(change).length) throw new CliError('nothing to set: give --telemetry-interval, --stats-window, --capture, --capture-rate or --capture-batch', 2);
      const current = await endpoint().$get({ param: t });
      const stored: Settings = (current.status as number) === 404 ? {} : (await call(Promise.resolve(current))).settings;
      const next: Settings = { ...stored, ...change };
      if (change.sampleCapture) next.sampleCapture = { ...stored.sampleCapture, ...change.sampleCapture };
      const res = await call(endpoint().$put({ param: t, json: next }));
      emit(ctx.out(), res, () => `${keyValues({ [t.scope]: t.target, ...settingsRow(res.settings) })}\n\nre-signed ${res.resigned.length} device manifest(s)`);
    });

  settings
    .command('show')
    .description('every stored setting; with --cohort what that cohort sets; with --device what the device gets in effect')
    .option('--cohort <name>', 'a cohort')
    .option('--device <id>', 'a device')
    .action(async (o: { cohort?: string; device?: string }) => {
      const t = targetOf(o, false);
      if (!t) {
        const res = await call(ctx.api().api.v1['agent-settings'].$get({ query: {} }));
        return emit(ctx.out(), res, () => table(res.settings.map((s) => ({ scope: s.scope, target: s.target, ...settingsRow(s.settings), updatedAt: s.updatedAt, updatedBy: s.updatedBy })), ['scope', 'target', 'telemetry', 'stats', 'capture', 'updatedAt', 'updatedBy']));
      }
      if (t.scope === 'cohort') {
        const res = await call(endpoint().$get({ param: t }));
        return emit(ctx.out(), res, () => keyValues({ cohort: res.target, ...settingsRow(res.settings), updatedAt: res.updatedAt, updatedBy: res.updatedBy }));
      }
      const res = await call(ctx.api().api.v1['agent-settings'].effective[':device'].$get({ param: { device: t.target } }));
      emit(ctx.out(), res, () => keyValues({ device: res.deviceId, deployedVia: res.cohort ?? '-', ...settingsRow(res.config), from: res.sources.join(' < ') }));
    });

  settings
    .command('rm')
    .description('remove the settings of a cohort or a device (its devices fall back to the next layer)')
    .option('--cohort <name>', 'a cohort')
    .option('--device <id>', 'a device')
    .action(async (o: { cohort?: string; device?: string }) => {
      const t = targetOf(o, true)!;
      const res = await call(endpoint().$delete({ param: t }));
      emit(ctx.out(), { removed: t, ...res }, () => `removed the settings of ${t.scope} ${t.target}; re-signed ${res.resigned.length} device manifest(s)`);
    });
}
