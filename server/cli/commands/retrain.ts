// `flotilla retrain <model>`: show the retraining policy, set it from a JSON file, or start a job now.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { call, type Api } from '../api.ts';
import { CliError, emit, keyValues, type Output } from '../output.ts';

const oneLine = (v: unknown) => (v === null || v === undefined ? '-' : JSON.stringify(v));

export function registerRetrainCommands(program: Command, ctx: { api: () => Api; out: () => Output }) {
  program
    .command('retrain <model>')
    .description("show the model's retraining policy; --policy sets it, --now starts a job, --disable/--enable toggle it, --remove deletes it")
    .option('--policy <file>', 'set the policy from a JSON file ({cron?, driftOpenForS?, trainer, data, after?, timeoutS?, maxAttempts?, enabled?})')
    .option('--now', 'start a training job now with the policy and print its id')
    .option('--disable', 'keep the policy but stop its schedule and drift trigger')
    .option('--enable', 'enable the policy again')
    .option('--remove', 'delete the policy')
    .action(async (model: string, o: { policy?: string; now?: boolean; disable?: boolean; enable?: boolean; remove?: boolean }) => {
      if ([o.policy, o.now, o.disable || o.enable, o.remove].filter(Boolean).length > 1) throw new CliError('give one of --policy, --now, --enable/--disable, --remove', 2);
      const api = ctx.api();
      const route = api.api.v1.models[':name']['retrain-policy'];
      if (o.remove) {
        await call(route.$delete({ param: { name: model } }));
        emit(ctx.out(), { model, removed: true }, () => `retraining policy of ${model} removed`);
        return;
      }
      if (o.now) {
        const job = await call(api.api.v1.models[':name'].retrain.$post({ param: { name: model } }));
        emit(ctx.out(), job, () => `job ${job.id} queued (${job.model}${job.parent ? `, parent ${job.parent}` : ''}); follow it with \`flotilla jobs logs ${job.id} --follow\``);
        return;
      }
      let body: Record<string, unknown> | undefined;
      if (o.policy) {
        const text = await readFile(o.policy, 'utf8').catch((err: NodeJS.ErrnoException) => {
          throw new CliError(`cannot read ${o.policy} (${err.code ?? err.message}): --policy takes a JSON file ({cron?, trainer, data, ...}; README, "Continuous training")`, 2);
        });
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          throw new CliError(`${o.policy} is not JSON: --policy takes a JSON file ({cron?, trainer, data, ...}; README, "Continuous training")`, 2);
        }
      } else if (o.disable || o.enable) {
        const current = await call(route.$get({ param: { name: model } }));
        const { model: _m, updatedAt: _u, updatedBy: _b, trainer, ...rest } = current;
        if (trainer.kind === 'webhook' && trainer.secret) throw new CliError('the webhook secret is not readable back: set the policy again with --policy (and "enabled")', 2);
        body = { ...rest, trainer, enabled: Boolean(o.enable) };
      }
      const policy = body ? await call(route.$put({ param: { name: model }, json: body })) : await call(route.$get({ param: { name: model } }));
      emit(ctx.out(), policy, () =>
        keyValues({
          model: policy.model,
          enabled: policy.enabled,
          cron: policy.cron,
          driftOpenForS: policy.driftOpenForS,
          trainer: oneLine(policy.trainer),
          data: oneLine(policy.data),
          after: oneLine(policy.after),
          timeoutS: policy.timeoutS,
          maxAttempts: policy.maxAttempts,
          updated: `${policy.updatedAt} by ${policy.updatedBy ?? '-'}`,
        }),
      );
    });
}
