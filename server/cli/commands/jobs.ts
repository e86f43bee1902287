// `flotilla jobs ls|show|logs|cancel`: training jobs.
import type { Command } from 'commander';
import { call, type Api } from '../api.ts';
import { CliError, emit, keyValues, table, type Output, wholeNumber } from '../output.ts';

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

export function registerJobCommands(program: Command, ctx: { api: () => Api; out: () => Output }) {
  const jobs = program.command('jobs').description('training jobs (retraining)');
  jobs
    .command('ls')
    .description('list jobs, newest first')
    .option('--model <name>', 'only this model')
    .option('--status <status>', 'queued | running | waiting | succeeded | failed | cancelled')
    .option('--limit <n>', 'how many', wholeNumber, '50')
    .action(async (o: { model?: string; status?: string; limit: string }) => {
      const r = await call(ctx.api().api.v1.jobs.$get({ query: { model: o.model, status: o.status as never, limit: o.limit } }));
      emit(ctx.out(), r.jobs, () =>
        table(
          r.jobs.map((j) => ({ ...j, trigger: j.trigger.kind, trainer: j.trainer.kind, attempt: `${j.attempt}/${j.maxAttempts}` })),
          ['id', 'model', 'status', 'trigger', 'trainer', 'attempt', 'parent', 'result', 'createdAt'],
        ),
      );
    });
  jobs
    .command('show <id>')
    .description('one job: trigger, trainer, parent, dataset snapshot, result, rollout, metrics, error')
    .action(async (id: string) => {
      const j = await call(ctx.api().api.v1.jobs[':id'].$get({ param: { id } }));
      emit(ctx.out(), j, () =>
        keyValues({
          id: j.id,
          model: j.model,
          status: j.status + (j.cancelRequested && !TERMINAL.has(j.status) ? ' (cancel requested)' : ''),
          trigger: j.trigger,
          trainer: j.trainer,
          parent: j.parent,
          dataset: j.dataset,
          result: j.result,
          rollout: j.rollout,
          attempt: `${j.attempt} of ${j.maxAttempts} (timeout ${j.timeoutS} s)`,
          runner: j.runner,
          metrics: j.metrics,
          error: j.error,
          created: j.createdAt,
          started: j.startedAt,
          finished: j.finishedAt,
        }),
      );
    });
  jobs
    .command('logs <id>')
    .description("a job's log (trainer stdout/stderr and the runner's steps)")
    .option('--follow', 'keep printing new lines until the job ends')
    .action(async (id: string, o: { follow?: boolean }) => {
      const api = ctx.api();
      const json = ctx.out().json;
      if (json && o.follow) throw new CliError('--follow prints lines as they come; leave out --json', 2);
      let after: number | undefined;
      for (;;) {
        const r = await call(api.api.v1.jobs[':id'].logs.$get({ param: { id }, query: { after: after === undefined ? undefined : String(after), limit: '5000' } }));
        if (json) {
          emit(ctx.out(), r.lines, () => '');
          return;
        }
        for (const l of r.lines) process.stdout.write(`${l.at} ${l.stream.padEnd(6)} ${l.line}\n`);
        if (r.lines.length) after = r.lines.at(-1)!.id;
        if (!o.follow) return;
        const job = await call(api.api.v1.jobs[':id'].$get({ param: { id } }));
        if (TERMINAL.has(job.status) && !r.lines.length) return;
        await new Promise((res) => setTimeout(res, 1000));
      }
    });
  jobs
    .command('cancel <id>')
    .description('cancel a job (a running trainer is stopped)')
    .action(async (id: string) => {
      const j = await call(ctx.api().api.v1.jobs[':id'].cancel.$post({ param: { id } }));
      emit(ctx.out(), j, () => `job ${j.id}: ${j.status === 'cancelled' ? 'cancelled' : 'cancel requested (the runner stops it within a heartbeat)'}`);
    });
}
