// `flotilla predictions log`, `flotilla labels push`, `flotilla performance`: ground truth from the
// terminal (log predictions, send the labels that arrive later, read accuracy over time).
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { call, type Api } from '../api.ts';
import { CliError, emit, keyValues, table, type Output } from '../output.ts';

/** A JSON array or JSON lines file of objects. */
async function readRecords(file: string, flag: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new CliError(`cannot read ${file} (${err.code}): ${flag} takes a .json array or a .jsonl file`, 2);
  });
  try {
    const trimmed = text.trim();
    if (trimmed.startsWith('[')) return JSON.parse(trimmed);
    return trimmed.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  } catch (err) {
    throw new CliError(`${file} is neither a JSON array nor JSON lines (${(err as Error).message})`, 2);
  }
}

const pct = (v: number | null) => (v === null ? '-' : `${(v * 100).toFixed(1)} %`);

export function registerGroundTruthCommands(program: Command, ctx: { api: () => Api; out: () => Output }) {
  program
    .command('predictions')
    .description('predictions logged for ground truth')
    .command('log <file>')
    .description('log predictions so labels can be matched later: a .json array or .jsonl of {predictionId, model, predicted, at, deviceId?}')
    .action(async (file: string) => {
      const items = await readRecords(file, 'predictions log');
      const r = await call(ctx.api().api.v1.predictions.$post({ json: items as never }));
      emit(ctx.out(), r, () => [`accepted ${r.accepted}, duplicates ${r.duplicates}, rejected ${r.rejected.length}`, ...r.rejected.map((x) => `rejected ${x.predictionId}: ${x.reason}`)].join('\n'));
    });
  program
    .command('labels')
    .description('ground truth for logged predictions')
    .command('push <file>')
    .description('send labels: a .json array or .jsonl of {predictionId, label} (a later label replaces an earlier one)')
    .action(async (file: string) => {
      const items = await readRecords(file, 'labels push');
      const r = await call(ctx.api().api.v1.labels.$post({ json: items as never }));
      emit(ctx.out(), r, () => `stored ${r.stored} label(s), ${r.matched} matched a logged prediction`);
    });
  program
    .command('performance <model>')
    .description('accuracy of model@N from logged predictions and their labels, per time bucket')
    .option('--cohort <name>', 'one cohort')
    .option('--window <duration>', 'e.g. 1h, 1d')
    .option('--bucket <duration>', 'e.g. 5m, 1h')
    .option('--end <time>', 'end of the window, ISO 8601 (default now)')
    .action(async (model: string, o: { cohort?: string; window?: string; bucket?: string; end?: string }) => {
      const r = await call(ctx.api().api.v1.performance.$get({ query: { model, cohort: o.cohort, window: o.window, bucket: o.bucket, end: o.end } }));
      emit(ctx.out(), r, () =>
        [
          keyValues({ model: r.model, cohort: r.cohort ?? 'all devices', window: `${r.window.start} → ${r.window.end}`, predictions: r.predictions, labeled: r.labeled, accuracy: pct(r.accuracy) }),
          '',
          table(r.buckets.map((b) => ({ ...b, accuracy: pct(b.accuracy) })), ['start', 'predictions', 'labeled', 'correct', 'accuracy']),
        ].join('\n'),
      );
    });
}
