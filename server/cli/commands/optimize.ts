// `flotilla optimize <model@N> --quantize int8 [--per-channel] [--integer] [--prune 0.5 [--structured]] --eval <dataset@N>`:
// registers the variant as a child version and prints how it compares with its parent.
import type { Command } from 'commander';
import { call, type Api } from '../api.ts';
import { withSpinner } from '../progress.ts';
import { CliError, emit, type Output } from '../output.ts';
import { formatEvaluation, type ReportLike } from './evaluation-format.ts';

function splitRef(ref: string): { name: string; ref: string } {
  const at = ref.indexOf('@');
  return at === -1 ? { name: ref, ref: 'latest' } : { name: ref.slice(0, at), ref: ref.slice(at + 1) };
}

function sparsity(v: string): number {
  const n = Number(v);
  if (!(n > 0 && n < 1)) throw new CliError(`--prune takes a sparsity between 0 and 1 (e.g. 0.5), got "${v}"`, 2);
  return n;
}

interface Outcome {
  version: { ref: string; status: string; statusReason: string | null; variant: string | null; recipe: Record<string, unknown> | null };
  report: ReportLike;
}

export function registerOptimizeCommand(program: Command, ctx: { api: () => Api; out: () => Output }) {
  program
    .command('optimize <model>')
    .description('quantize and/or prune a version (model@N); the variant is registered as its child, evaluated against it and rejected when it breaks the model\'s budgets')
    .option('--quantize <type>', 'int8')
    .option('--per-channel', 'one quantization scale per output channel (default: per tensor)')
    .option('--integer', 'integer compute (DynamicQuantizeLinear + MatMulInteger) instead of weight-only QDQ')
    .option('--prune <sparsity>', 'magnitude-prune to this sparsity, e.g. 0.5', sparsity)
    .option('--structured', 'prune whole output channels (shrinks the tensors) instead of single weights')
    .option('--calibrate <dataset>', 'calibrate pruning on this dataset (name@N, not the evaluation set)')
    .option('--eval <dataset>', 'evaluation dataset (name@N, labels optional); without it the variant is compared with its parent on the device samples captured for the model (at least 16), else on inputs generated from the declared input shape')
    .action(async (refArg: string, o: { quantize?: string; perChannel?: boolean; integer?: boolean; prune?: number; structured?: boolean; calibrate?: string; eval?: string }) => {
      if (o.quantize !== undefined && o.quantize !== 'int8') throw new CliError(`--quantize supports int8, got "${o.quantize}"`, 2);
      if (!o.quantize && o.prune === undefined) throw new CliError('say what to do: --quantize int8 and/or --prune <sparsity>', 2);
      if ((o.perChannel || o.integer) && !o.quantize) throw new CliError('--per-channel and --integer go with --quantize int8', 2);
      if ((o.structured || o.calibrate) && o.prune === undefined) throw new CliError('--structured and --calibrate go with --prune <sparsity>', 2);
      const { name, ref } = splitRef(refArg);
      const res = (await withSpinner(ctx.out(), `optimizing ${refArg}`, call(
        ctx.api().api.v1.models[':name'].versions[':ref'].optimize.$post({
          param: { name, ref },
          json: {
            dataset: o.eval,
            quantize: o.quantize ? { form: o.integer ? 'integer' : 'qdq', perChannel: Boolean(o.perChannel) } : undefined,
            prune: o.prune !== undefined ? { sparsity: o.prune, structured: Boolean(o.structured), calibration: o.calibrate } : undefined,
          },
        }),
      ))) as unknown as Outcome;
      const v = res.version;
      emit(ctx.out(), res, () => {
        const head = `registered ${v.ref} (${v.variant}) — ${v.status === 'ready' ? 'ready' : `REJECTED: ${v.statusReason}`}`;
        return `${head}\n\n${formatEvaluation(res.report, `${v.ref} ${v.variant}`)}`;
      });
      // The report is printed either way; a rejected variant is a failed command (scripts and CI see it).
      if (v.status !== 'ready') throw new CliError(`${v.ref} (${v.variant}) was registered but rejected: ${v.statusReason ?? v.status}`, 1);
    });
}
