// `flotilla drift evaluate` and `flotilla drift config`: run the drift monitor now, read or set a
// model's drift settings. They join `flotilla drift <model>` (monitoring.ts) as subcommands.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { call, type Api } from '../api.ts';
import { CliError, emit, keyValues, table, type Output } from '../output.ts';

export function registerDriftAdminCommands(program: Command, ctx: { api: () => Api; out: () => Output }) {
  const drift = program.commands.find((c) => c.name() === 'drift') ?? program.command('drift');
  drift
    .command('evaluate')
    .description('run the drift monitor now (alerts open and close as on the schedule): every deployed model and cohort, or the ones named')
    .option('--model <model@N>', 'one model version')
    .option('--cohort <name>', 'one cohort')
    .option('--window <duration>', 'e.g. 15m, 1h (default: the server\'s FLOTILLA_DRIFT_WINDOW)')
    .option('--end <time>', 'end of the window, ISO 8601 (default now)')
    .action(async (o: { model?: string; cohort?: string; window?: string; end?: string }) => {
      const r = await call(ctx.api().api.v1.drift.evaluate.$post({ json: { model: o.model, cohort: o.cohort, window: o.window, end: o.end } }));
      emit(ctx.out(), r, () =>
        r.evaluations.length
          ? table(
              r.evaluations.map((e) => ({ ...e, drifted: e.driftedFeatures.join(',') || '-', alert: e.transition ? `${e.transition} ${(e.alert as { id?: string } | null)?.id ?? ''}`.trim() : '-' })),
              ['model', 'cohort', 'rows', 'verdict', 'drifted', 'alert'],
            )
          : 'nothing evaluated: no deployed model version with a reference profile on a cohort (set one with `flotilla models reference <model@N> <file>`)',
      );
    });
  drift
    .command('config <model>')
    .description("show a model's drift settings (methods, thresholds, minSamples); --set replaces them from a JSON file")
    .option('--set <file>', 'JSON file with the settings (protocol DriftConfig), e.g. {"datasetThreshold":0.5}')
    .action(async (name: string, o: { set?: string }) => {
      const route = ctx.api().api.v1.models[':name']['drift-config'];
      let r;
      if (o.set) {
        const text = await readFile(o.set, 'utf8').catch((err: NodeJS.ErrnoException) => {
          throw new CliError(`cannot read --set ${o.set} (${err.code}): give a JSON file`, 2);
        });
        let body: Record<string, unknown>;
        try {
          body = JSON.parse(text);
        } catch {
          throw new CliError(`--set ${o.set} is not JSON: e.g. {"datasetThreshold":0.5}`, 2);
        }
        r = await call(route.$put({ param: { name }, json: body }));
      } else r = await call(route.$get({ param: { name } }));
      emit(ctx.out(), r, () => `${keyValues({ model: r.model, custom: r.custom ? 'yes' : 'no (defaults)', updatedAt: r.updatedAt, updatedBy: r.updatedBy })}\n\n${JSON.stringify(r.config, null, 2)}`);
    });
}
