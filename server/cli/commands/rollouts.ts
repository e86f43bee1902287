// `flotilla rollouts start|ls|show|pause|resume|abort`: staged (canary) rollouts of a bundle on a cohort.
import type { Command } from 'commander';
import { call, type Api } from '../api.ts';
import { CliError, emit, keyValues, parseDuration, table, type Output } from '../output.ts';
import { watch } from '../watch.ts';

function stagesOf(text: string, flag: string): number[] {
  const stages = text.split(',').map((s) => Number(s.trim().replace(/%$/, '')) / (s.trim().endsWith('%') ? 100 : 1));
  if (stages.some((s) => !Number.isFinite(s))) throw new CliError(`invalid ${flag} "${text}": e.g. 0.1,0.5,1 or 10%,100%`, 2);
  return stages;
}

/** Per stage: its devices and how far they are (active on the rollout's bundle, updating, failed, not yet asked). */
function stageProgress(r: { stages: number[]; stage: number; devices: Array<{ stage: number; desiredBundle: string | null; activeBundle: string | null; updateState: string | null }>; bundleId: string; assignedBundleId: string }) {
  return r.stages.map((share, i) => {
    const ds = r.devices.filter((d) => d.stage === i);
    const count = (f: (d: (typeof ds)[number]) => boolean) => ds.filter(f).length;
    const target = (b: string | null) => b === r.assignedBundleId || b === r.bundleId;
    const active = count((d) => target(d.activeBundle));
    const failed = count((d) => !target(d.activeBundle) && (d.updateState === 'failed' || d.updateState === 'rolled_back'));
    const pending = count((d) => !target(d.desiredBundle));
    return { stage: `${i + 1}${i === r.stage ? ' ◀' : ''}`, share: `${Math.round(share * 100)} %`, devices: ds.length, active, failed, pending, updating: ds.length - active - failed - pending };
  });
}

const progress = (r: { stage: number; stages: number[]; status: string }) => `${r.stage + 1}/${r.stages.length} (${Math.round(r.stages[r.stage] * 100)} %)`;

export interface RolloutStartOptions {
  cohort: string;
  stages: string;
  bake: string;
  maxFailed: string;
  maxErrorRate?: string;
  onFailure: string;
}

/** Starts a staged rollout and prints it: shared by `rollouts start` and `deploy --canary` (`stagesFlag` names the flag in errors). */
export async function startRollout(ctx: { api: () => Api; out: () => Output }, bundle: string, o: RolloutStartOptions, stagesFlag = '--stages'): Promise<void> {
  if (!['pause', 'rollback'].includes(o.onFailure)) throw new CliError('--on-failure is pause or rollback', 2);
  const r = await call(
    ctx.api().api.v1.rollouts.$post({
      json: {
        bundle,
        cohort: o.cohort,
        stages: stagesOf(o.stages, stagesFlag),
        bakeS: parseDuration(o.bake),
        gates: { maxFailedUpdates: Number(o.maxFailed), maxErrorRate: o.maxErrorRate === undefined ? undefined : Number(o.maxErrorRate), onFailure: o.onFailure as 'pause' | 'rollback' },
      },
    }),
  );
  emit(ctx.out(), r, () => `rollout ${r.id}: ${r.model} on ${r.cohort}, stage ${progress(r)}`);
}

export function registerRolloutCommands(program: Command, ctx: { api: () => Api; out: () => Output }) {
  const rollouts = program.command('rollouts').description('staged (canary) rollouts of a bundle on a cohort');
  rollouts
    .command('start <bundle>')
    .description('roll a bundle (id, name or model@N) out to a cohort in stages')
    .requiredOption('--cohort <name>', 'target cohort')
    .option('--stages <list>', 'fractions of the cohort, increasing, ending at 1', '0.1,1')
    .option('--bake <duration>', 'how long a stage stays healthy before the next one', '5m')
    .option('--max-failed <n>', 'failed updates a stage tolerates', '0')
    .option('--max-error-rate <ratio>', 'error rate of the stage devices that fails the gate (0…1)')
    .option('--on-failure <action>', 'pause | rollback', 'pause')
    .action((bundle: string, o: RolloutStartOptions) => startRollout(ctx, bundle, o));
  rollouts
    .command('ls')
    .description('list rollouts, newest first')
    .option('--status <status>', 'running | paused | succeeded | aborted')
    .option('--cohort <name>')
    .action(async (o: { status?: string; cohort?: string }) => {
      const r = await call(ctx.api().api.v1.rollouts.$get({ query: { status: o.status as never, cohort: o.cohort } }));
      emit(ctx.out(), r.rollouts, () =>
        table(
          r.rollouts.map((x) => ({ ...x, stage: progress(x), check: (x.lastCheck as { verdict?: string } | null)?.verdict ?? '-' })),
          ['id', 'model', 'cohort', 'status', 'stage', 'check', 'createdAt'],
        ),
      );
    });
  rollouts
    .command('show <id>')
    .description('a rollout with its progress by stage and its devices in stage order')
    .option('--watch', 'refresh in place until the rollout ends (or Ctrl-C)')
    .option('--interval <duration>', 'refresh interval with --watch', '2s')
    .action(async (id: string, o: { watch?: boolean; interval: string }) => {
      const frame = async () => {
        const r = await call(ctx.api().api.v1.rollouts[':id'].$get({ param: { id } }));
        const human = () =>
          [
            keyValues({
              id: r.id,
              model: r.model,
              bundle: `${r.bundle} (${r.bundleId})`,
              ...(r.assignedBundleId !== r.bundleId ? { assignedBundle: `${r.assignedBundleId} (the cohort's preferred variant)` } : {}),
              cohort: r.cohort,
              status: r.status,
              stage: progress(r),
              stages: r.stages.join(' → '),
              bake: `${r.bakeS} s`,
              gates: r.gates,
              lastCheck: (r.lastCheck as { verdict?: string } | null)?.verdict ?? null,
              previousBundle: r.previousBundleId,
              job: r.jobId,
            }),
            '',
            table(stageProgress(r), ['stage', 'share', 'devices', 'active', 'updating', 'failed', 'pending']),
            '',
            table(r.devices.map((d) => ({ ...d, stage: d.stage + 1 })), ['id', 'stage', 'desiredBundle', 'activeBundle', 'updateState']),
          ].join('\n');
        return { data: r, human, done: !['running', 'paused'].includes(r.status) };
      };
      if (o.watch) return watch(ctx.out(), parseDuration(o.interval), frame);
      const f = await frame();
      emit(ctx.out(), f.data, f.human);
    });
  for (const action of ['pause', 'resume', 'abort'] as const) {
    const cmd = rollouts.command(`${action} <id>`).description({ pause: 'stop advancing', resume: 'continue (the stage bakes again)', abort: 'stop for good' }[action]);
    if (action === 'abort') cmd.option('--rollback', 'put the devices this rollout changed back on the previous bundle');
    cmd.action(async (id: string, o: { rollback?: boolean }) => {
      const route = ctx.api().api.v1.rollouts[':id'][action];
      const r = await call(route.$post({ param: { id }, json: { rollback: o.rollback } }));
      emit(ctx.out(), r, () => `rollout ${r.id}: ${r.status}`);
    });
  }
}
