// `flotilla samples ls`: captured device samples (inputs, outputs, fed-back labels) of a model.
import type { Command } from 'commander';
import { call, type Api } from '../api.ts';
import { CliError, emit, table, type Output, wholeNumber } from '../output.ts';

const brief = (v: Record<string, unknown>, max = 60) => {
  const text = Object.entries(v)
    .map(([k, x]) => `${k}=${typeof x === 'string' && x.length > 24 ? `${x.slice(0, 21)}…` : String(x)}`)
    .join(',');
  return text.length > max ? `${text.slice(0, max - 1)}…` : text || '-';
};

export function registerSampleCommands(program: Command, ctx: { api: () => Api; out: () => Output }) {
  const samples = program.command('samples').description('samples captured on devices (opt-in: `flotilla settings set --capture on`)');
  samples
    .command('ls <model>')
    .description('samples of a model (name: every version; name@N: one), newest first')
    .option('--cohort <name>', 'only devices of this cohort')
    .option('--since <time>', 'only samples taken since, ISO 8601')
    .option('--limit <n>', 'at most this many (1–1000)', wholeNumber, '100')
    .action(async (model: string, o: { cohort?: string; since?: string; limit: string }) => {
      const limit = Number(o.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new CliError(`--limit takes 1 to 1000, got "${o.limit}"`, 2);
      const res = await call(ctx.api().api.v1.samples.$get({ query: { model, cohort: o.cohort, since: o.since, limit: String(limit) } }));
      emit(ctx.out(), res, () =>
        table(
          res.samples.map((s) => ({ at: s.at, device: s.deviceId, model: s.model, inputs: brief(s.inputs), outputs: brief(s.outputs, 40), label: s.label })),
          ['at', 'device', 'model', 'inputs', 'outputs', 'label'],
        ),
      );
    });
}
