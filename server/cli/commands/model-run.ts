// `flotilla models run <model@N>`: run a version on one input on the server (the console's playground).
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { call, type Api } from '../api.ts';
import { splitModelRef } from '../model-ref.ts';
import { CliError, emit, table, type Output } from '../output.ts';

export function registerModelRunCommand(program: Command, ctx: { api: () => Api; out: () => Output }) {
  const models = program.commands.find((c) => c.name() === 'models') ?? program.command('models');
  models
    .command('run <model>')
    .description('run model@N on one input on the server (onnxruntime-node) and print its outputs')
    .requiredOption('--inputs <json|@file>', 'the input tensors: {"name":{"dims":[1,4],"data":[...]}} or @file.json')
    .action(async (ref: string, o: { inputs: string }) => {
      const text = o.inputs.startsWith('@')
        ? await readFile(o.inputs.slice(1), 'utf8').catch((err: NodeJS.ErrnoException) => {
            throw new CliError(`cannot read --inputs ${o.inputs.slice(1)} (${err.code})`, 2);
          })
        : o.inputs;
      let inputs: Record<string, { dims: number[]; data: number[] }>;
      try {
        inputs = JSON.parse(text);
      } catch {
        throw new CliError('--inputs must be JSON like {"x":{"dims":[1,4],"data":[0.1,0.2,0.3,0.4]}} (or @file.json)', 2);
      }
      const { name, ref: version } = splitModelRef(ref);
      const r = await call(ctx.api().api.v1.models[':name'].versions[':version'].run.$post({ param: { name, version }, json: { inputs } }));
      emit(ctx.out(), r, () =>
        [
          `${r.model} ran in ${r.latencyMs.toFixed(2)} ms`,
          '',
          table(
            Object.entries(r.outputs).map(([output, t]) => ({ output, type: t.type, dims: `[${t.dims.join(', ')}]`, data: t.data.length > 12 ? `${t.data.slice(0, 12).join(', ')}, … (${t.data.length})` : t.data.join(', ') })),
            ['output', 'type', 'dims', 'data'],
          ),
        ].join('\n'),
      );
    });
}
