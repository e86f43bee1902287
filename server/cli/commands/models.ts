// `flotilla models ...`: push, ls, show, versions, alias, unalias, tag, rm.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Command } from 'commander';
import { call, type Api } from '../api.ts';
import { modelUpload } from './model-upload.ts';
import type { CliConfig } from '../env.ts';
import { byteProgress, endProgress } from '../progress.ts';
import { CliError, emit, keyValues, parsePairs, table, type Output } from '../output.ts';
import { formatEvaluation, type ReportLike } from './evaluation-format.ts';
import { describeSize, type VersionFacts } from '../../models/version-facts.ts';

function splitRef(ref: string): { name: string; ref: string } {
  const at = ref.indexOf('@');
  return at === -1 ? { name: ref, ref: 'latest' } : { name: ref.slice(0, at), ref: ref.slice(at + 1) };
}

const collect = (v: string, prev: string[]) => [...prev, v];

function fraction(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n >= 0 && n <= 1)) throw new CliError(`expected a fraction between 0 and 1 (0.01 = one point), got "${v}"`, 2);
  return n;
}

function shape(t: { name: string; dtype: string; shape: Array<number | string | null> }) {
  return `${t.name}:${t.dtype}[${t.shape.map((d) => d ?? '?').join(',')}]`;
}

export function registerModelCommands(program: Command, ctx: { api: () => Api; out: () => Output; config: () => CliConfig }) {
  const models = program.command('models').description('model registry: versions, aliases, lineage');

  models
    .command('push <file>')
    .description('upload an ONNX file as the next version of a model; weights in ONNX external data files are sent with it (give the .onnx with its data files beside it, the export folder, or a .tar of that folder)')
    .requiredOption('--name <model>', 'model name')
    .option('--notes <text>', 'release notes')
    .option('--parent <ref>', 'parent version (model@N) for lineage')
    .option('--metric <k=v>', 'a metric, repeatable', collect, [])
    .option('--tag <k=v>', 'a tag, repeatable', collect, [])
    .option('--eval <dataset>', 'then evaluate it against the champion on this dataset (name@N); a broken budget rejects it')
    .action(async (target: string, o: { name: string; notes?: string; parent?: string; metric: string[]; tag: string[]; eval?: string }) => {
      const upload = await modelUpload(target);
      const file = upload.file;
      const config = ctx.config();
      const url = new URL(`/api/v1/models/${encodeURIComponent(o.name)}/versions`, config.url);
      if (o.notes) url.searchParams.set('notes', o.notes);
      if (o.parent) url.searchParams.set('parent', o.parent);
      for (const m of o.metric) url.searchParams.append('metric', m);
      for (const t of o.tag) url.searchParams.append('tag', t);
      ctx.api(); // validates URL and token are configured
      // The typed client cannot stream a file body, so this one call uses fetch directly.
      const headers = { authorization: `Bearer ${config.token}`, 'content-type': 'application/octet-stream' };
      const request = upload.packed
        ? fetch(url, { method: 'POST', headers: { ...headers, 'content-length': String(upload.packed.length) }, body: Buffer.from(upload.packed) })
        : fetch(url, {
            method: 'POST',
            headers: { ...headers, 'content-length': String(upload.size) },
            body: Readable.toWeb(createReadStream(file).pipe(byteProgress(ctx.out(), `uploading ${path.basename(file)}`, upload.size))) as ReadableStream,
            duplex: 'half',
          } as RequestInit);
      const v = (await call(request).finally(() => endProgress(ctx.out()))) as unknown as { ref: string; version: number; sha256: string; size: number; paramCount: number; opset: number; facts: Record<string, unknown> | null };
      const pushed = `pushed ${v.ref} (${[path.basename(file), ...upload.sideFiles].join(' + ')}, ${v.size} bytes, sha256 ${v.sha256.slice(0, 12)}…, ${describeSize(v)}, opset ${v.opset})${rewriteNote(v.facts)}`;
      if (!o.eval) return emit(ctx.out(), v, () => pushed);
      const ev = (await call(
        ctx.api().api.v1.models[':name'].versions[':ref'].evaluate.$post({ param: { name: o.name, ref: String(v.version) }, json: { dataset: o.eval } }),
      )) as unknown as { version: { ref: string; status: string; statusReason: string | null }; report: ReportLike };
      emit(ctx.out(), ev, () => `${pushed}\n${ev.version.status === 'ready' ? 'ready' : `REJECTED: ${ev.version.statusReason}`}\n\n${formatEvaluation(ev.report, ev.version.ref)}`);
    });

  models
    .command('ls')
    .description('list models')
    .action(async () => {
      const res = await call(ctx.api().api.v1.models.$get({ query: {} }));
      emit(ctx.out(), res, () => table(res.models, ['name', 'versions', 'latest', 'aliases', 'updatedAt']));
    });

  models
    .command('versions <model>')
    .description('list the versions of a model, newest first')
    .action(async (name: string) => {
      const res = await call(ctx.api().api.v1.models[':name'].versions.$get({ param: { name }, query: {} }));
      emit(ctx.out(), res, () =>
        table(
          res.versions.map((v) => ({ ...v, sha256: v.sha256.slice(0, 12) })),
          ['ref', 'status', 'variant', 'size', 'paramCount', 'opset', 'aliases', 'parent', 'metrics', 'createdAt'],
        ),
      );
    });

  models
    .command('show <ref>')
    .description('show a version (model, model@N or model@alias) with lineage')
    .action(async (refArg: string) => {
      const { name, ref } = splitRef(refArg);
      const v = await call(ctx.api().api.v1.models[':name'].versions[':ref'].$get({ param: { name, ref } }));
      emit(ctx.out(), v, () =>
        keyValues({
          ref: v.ref,
          sha256: v.sha256,
          size: v.size,
          producer: v.producer,
          opset: v.opset,
          inputs: v.inputs.map(shape).join(' '),
          outputs: v.outputs.map(shape).join(' '),
          parameters: v.paramCount,
          size_facts: describeSize(v),
          rewritten: rewriteNote(v.facts).trim() || null,
          initializerBytes: v.initializerBytes,
          aliases: v.aliases,
          tags: v.tags,
          metrics: v.metrics,
          notes: v.notes,
          parent: v.parent,
          children: v.children,
          status: v.status === 'rejected' ? `rejected: ${v.statusReason}` : v.status,
          override: v.override ? `by ${v.override.by} at ${v.override.at}: ${v.override.reason}` : null,
          variant: v.variant,
          recipe: v.recipe ? JSON.stringify({ quantize: v.recipe.quantize, prune: v.recipe.prune }) : null,
          lineage: v.lineage ? JSON.stringify(v.lineage) : null,
          createdAt: v.createdAt,
          createdBy: v.createdBy,
        }) + (v.evaluation ? `\n\n${formatEvaluation(v.evaluation as unknown as ReportLike, v.ref)}` : ''),
      );
    });

  models
    .command('evaluate <ref>')
    .description('evaluate a version against the champion (else its parent) on a dataset; the report is stored and a broken budget rejects the version')
    .requiredOption('--dataset <dataset>', 'evaluation dataset (name@N)')
    .action(async (refArg: string, o: { dataset: string }) => {
      const { name, ref } = splitRef(refArg);
      const res = (await call(ctx.api().api.v1.models[':name'].versions[':ref'].evaluate.$post({ param: { name, ref }, json: { dataset: o.dataset } }))) as unknown as {
        version: { ref: string; status: string; statusReason: string | null };
        report: ReportLike;
      };
      emit(ctx.out(), res, () => `${res.version.ref}: ${res.version.status === 'ready' ? 'ready' : `REJECTED: ${res.version.statusReason}`}\n\n${formatEvaluation(res.report, res.version.ref)}`);
    });

  models
    .command('budgets <model>')
    .description('show or set the quality and fairness budgets new versions and variants are gated on (fractions: 0.01 = one point)')
    .option('--max-accuracy-drop <f>', 'largest accuracy drop against the champion / parent', fraction)
    .option('--min-agreement <f>', 'smallest share of predictions equal to the champion\'s / parent\'s', fraction)
    .option('--max-rmse-increase <f>', 'regressors: largest relative RMSE increase', fraction)
    .option('--max-accuracy-gap <f>', 'largest accuracy gap between groups', fraction)
    .option('--max-parity-gap <f>', 'largest demographic parity difference between groups', fraction)
    .option('--max-opportunity-gap <f>', 'largest equal opportunity difference between groups', fraction)
    .option('--reset', 'return every budget to its default')
    .action(async (name: string, o: Record<string, number | boolean | undefined>) => {
      const set = {
        maxAccuracyDrop: o.maxAccuracyDrop as number | undefined,
        minAgreement: o.minAgreement as number | undefined,
        maxRmseIncrease: o.maxRmseIncrease as number | undefined,
        maxAccuracyGap: o.maxAccuracyGap as number | undefined,
        maxDemographicParityDifference: o.maxParityGap as number | undefined,
        maxEqualOpportunityDifference: o.maxOpportunityGap as number | undefined,
      };
      const changes = Object.values(set).some((v) => v !== undefined) || o.reset;
      const endpoint = ctx.api().api.v1.models[':name'].budgets;
      const res = changes
        ? await call(endpoint.$put({ param: { name }, json: { ...set, reset: o.reset ? (Object.keys(set) as Array<keyof typeof set>) : [] } }))
        : await call(endpoint.$get({ param: { name } }));
      emit(ctx.out(), res, () =>
        table(
          Object.entries(res.effective).map(([budget, value]) => ({ budget, value, set: budget in res.custom ? 'yes' : 'default' })),
          ['budget', 'value', 'set'],
        ),
      );
    });

  models
    .command('override <ref>')
    .description('admin: let a rejected version roll out anyway (audited)')
    .requiredOption('--reason <text>', 'why the budget may be broken here')
    .action(async (refArg: string, o: { reason: string }) => {
      const { name, ref } = splitRef(refArg);
      const v = await call(ctx.api().api.v1.models[':name'].versions[':ref'].override.$post({ param: { name, ref }, json: { reason: o.reason } }));
      emit(ctx.out(), v, () => `${v.ref} may roll out despite: ${v.statusReason} (override by ${v.override?.by})`);
    });

  models
    .command('alias <model> <alias> <version>')
    .description('point an alias (e.g. champion) at version N')
    .action(async (name: string, alias: string, version: string) => {
      const n = Number(version);
      if (!Number.isInteger(n) || n < 1) throw new CliError(`version must be a positive integer, got "${version}"`, 2);
      const v = await call(ctx.api().api.v1.models[':name'].aliases[':alias'].$put({ param: { name, alias }, json: { version: n } }));
      emit(ctx.out(), v, () => `${name}@${alias} -> ${v.ref}`);
    });

  models
    .command('unalias <model> <alias>')
    .description('remove an alias')
    .action(async (name: string, alias: string) => {
      await call(ctx.api().api.v1.models[':name'].aliases[':alias'].$delete({ param: { name, alias } }));
      emit(ctx.out(), { removed: `${name}@${alias}` }, () => `removed ${name}@${alias}`);
    });

  models
    .command('tag <ref> [pairs...]')
    .description('set tags (k=v) on a version; --remove k to delete one')
    .option('--remove <key>', 'tag to remove, repeatable', collect, [])
    .action(async (refArg: string, pairs: string[], o: { remove: string[] }) => {
      const { name, ref } = splitRef(refArg);
      const v = await call(
        ctx.api().api.v1.models[':name'].versions[':ref'].tags.$patch({ param: { name, ref }, json: { set: parsePairs(pairs, 'tag'), remove: o.remove } }),
      );
      emit(ctx.out(), v, () => `${v.ref} tags: ${Object.entries(v.tags).map(([k, x]) => `${k}=${x}`).join(', ') || '(none)'}`);
    });

  models
    .command('rm <ref>')
    .description('delete a version (refused while aliases, children or bundles reference it)')
    .action(async (refArg: string) => {
      const { name, ref } = splitRef(refArg);
      if (ref === 'latest') throw new CliError('name the version to delete explicitly: model@N', 2);
      await call(ctx.api().api.v1.models[':name'].versions[':ref'].$delete({ param: { name, ref } }));
      emit(ctx.out(), { deleted: refArg }, () => `deleted ${refArg}`);
    });
}

/** What the registry changed at push (ZipMap removed), for the push line and `models show`. */
function rewriteNote(facts: Record<string, unknown> | null): string {
  const imported = (facts as VersionFacts | null)?.imported;
  if (!imported) return '';
  const what = imported.rewrites.map((r) => `${r.output}: ZipMap removed, now ${r.now} (classes ${r.classLabels.join(', ')})`).join('; ');
  return `\nrewritten at push: ${what}; original kept as sha256 ${imported.originalSha256.slice(0, 12)}…`;
}
