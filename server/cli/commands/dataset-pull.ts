// `flotilla datasets pull <name@N>`: download a dataset version's stored content (streamed).
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { call, type Api } from '../api.ts';
import { CliError, emit, type Output } from '../output.ts';

export function registerDatasetPullCommand(program: Command, ctx: { api: () => Api; out: () => Output }) {
  const datasets = program.commands.find((c) => c.name() === 'datasets') ?? program.command('datasets');
  datasets
    .command('pull <ref>')
    .description('download a dataset version (name@N): the CSV / JSON lines file, or the manifest of an image set')
    .option('-o, --output <file>', 'where to write it (default: the server\'s file name in the current folder; - for stdout)')
    .action(async (refArg: string, o: { output?: string }) => {
      const at = refArg.lastIndexOf('@');
      if (at <= 0) throw new CliError(`give a dataset version as name@N (e.g. ${refArg}@1); \`flotilla datasets versions ${refArg}\` lists them`, 2);
      const res = await ctx.api().api.v1.datasets[':name'].versions[':version'].content.$get({ param: { name: refArg.slice(0, at), version: refArg.slice(at + 1) } });
      if (!res.ok || !res.body) await call(Promise.resolve(res)); // throws the server's refusal
      const fromServer = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1];
      const target = o.output ?? fromServer ?? `${refArg.replace('@', '-')}`;
      const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
      if (target === '-') {
        await pipeline(body, process.stdout, { end: false });
        return;
      }
      await pipeline(body, createWriteStream(target, { flags: 'wx' })).catch((err: NodeJS.ErrnoException) => {
        throw new CliError(err.code === 'EEXIST' ? `${target} exists: remove it or choose another with -o <file>` : `cannot write ${target} (${err.code ?? err.message})`, 2);
      });
      emit(ctx.out(), { ref: refArg, file: target, bytes: Number(res.headers.get('content-length') ?? 0) }, () => `wrote ${refArg} to ${target}`);
    });
}
