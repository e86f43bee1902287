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

const progress = (r: { stage: number; stages: number[]; status: string; phase?: string }) =>
  r.phase === 'shadow' ? `shadow, then 1/${r.stages.length}` : `${r.stage + 1}/${r.stages.length} (${Math.round(r.stages[r.stage] * 100)} %)`;

/** `20%` or `0.2` as a share in (0, 1]; the server says what is wrong with one outside. */
function shareOf(text: string): number {
  const t = text.trim();
  const n = t.endsWith('%') ? Number(t.slice(0, -1)) / 100 : Number(t);
  if (!Number.isFinite(n) || t === '') throw new CliError(`invalid --shadow "${text}": a share of requests such as 20% or 0.2`, 2);
  return n;
}

function num(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n)) throw new CliError(`invalid ${flag} "${text}": a number`, 2);
  return n;
}

interface GateRow {
  name: string;
  value: number | null;
  threshold: string;
  status: string;
  reason: string;
}

/** Every gate of a check against its threshold, one line each. */
function gateLines(stage: string, gates: GateRow[] | undefined, verdict?: string): string[] {
  if (!gates?.length) return [];
  const fmt = (v: number | null) => (v === null ? '–' : Number.isInteger(v) ? String(v) : v.toFixed(3));
  return [`${stage}${verdict ? `: ${verdict}` : ''}`, table(gates.map((g) => ({ gate: g.name, value: fmt(g.value), threshold: g.threshold, status: g.status, reason: g.reason })), ['gate', 'value', 'threshold', 'status', 'reason'])];
}

export interface RolloutStartOptions {
  cohort: string;
  stages: string;
  bake: string;
  maxFailed: string;
  maxErrorRate?: string;
  onFailure: string;
  shadow?: string;
  shadowDuration?: string;
  shadowWindow?: string;
  minAgreement?: string;
  maxShadowLatencyRatio?: string;
  maxMeanAbsDiff?: string;
  minSuccessRatio?: string;
  maxLatencyRatio?: string;
  stageTimeout?: string;
  drift?: boolean;
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
        gates: {
          maxFailedUpdates: Number(o.maxFailed),
          maxErrorRate: num('--max-error-rate', o.maxErrorRate),
          minUpdateSuccessRatio: num('--min-success-ratio', o.minSuccessRatio),
          maxLatencyRatio: o.maxLatencyRatio === 'off' ? null : num('--max-latency-ratio', o.maxLatencyRatio),
          minAgreement: num('--min-agreement', o.minAgreement),
          maxShadowLatencyRatio: num('--max-shadow-latency-ratio', o.maxShadowLatencyRatio),
          maxMeanAbsDiff: num('--max-mean-abs-diff', o.maxMeanAbsDiff),
          stageTimeoutS: o.stageTimeout === undefined ? undefined : parseDuration(o.stageTimeout),
          ...(o.drift === false ? { drift: false } : {}),
          onFailure: o.onFailure as 'pause' | 'rollback',
        },
        ...(o.shadow !== undefined
          ? { shadow: { share: shareOf(o.shadow), durationS: o.shadowDuration === undefined ? undefined : parseDuration(o.shadowDuration), windowS: o.shadowWindow === undefined ? undefined : parseDuration(o.shadowWindow) } }
          : {}),
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
    .option('--shadow <share>', 'a shadow stage first: this share of live requests (e.g. 20%) also runs on the candidate, which never answers')
    .option('--shadow-duration <duration>', 'how long the shadow stage runs before the switch', '30m')
    .option('--shadow-window <duration>', 'how often devices report shadow figures (default 1m, at most half the duration)')
    .option('--min-agreement <ratio>', 'shadow: top-1 agreement the candidate must reach (default 0.95)')
    .option('--max-shadow-latency-ratio <r>', 'shadow: candidate p95 / active p95 allowed (default 1.5)')
    .option('--max-mean-abs-diff <x>', 'shadow: mean |active − candidate| allowed for regressor outputs')
    .option('--min-success-ratio <ratio>', 'devices of a stage that must end active (default 0.95)')
    .option('--max-latency-ratio <r>', "latency regression gate: stage p95 / the cohort's p95 before (default 1.2; off turns it off)")
    .option('--no-drift', 'do not fail a stage on a drift alert for the new version')
    .option('--stage-timeout <duration>', 'longest a stage waits for data before it fails (devices not reporting: timed out)')
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
    .description('a rollout with its progress and gates by stage and its devices in stage order')
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
              ...(r.shadow ? { shadow: `${Math.round(r.shadow.share * 100)} % of requests for ${r.shadow.durationS} s (windows of ${r.shadow.windowS} s)${r.phase === 'shadow' ? ', running' : ', done'}` } : {}),
              gates: r.gates,
              lastCheck: (r.lastCheck as { verdict?: string } | null)?.verdict ?? null,
              previousBundle: r.previousBundleId,
              job: r.jobId,
            }),
            '',
            table(stageProgress(r), ['stage', 'share', 'devices', 'active', 'updating', 'failed', 'pending']),
            '',
            ...(((r.lastCheck as { history?: Array<{ stage: string | number; verdict?: string; gates?: GateRow[] }> } | null)?.history ?? []).flatMap((h) =>
              gateLines(typeof h.stage === 'number' ? `stage ${h.stage + 1}` : 'shadow stage', h.gates, h.verdict),
            )),
            ...(r.status === 'running'
              ? gateLines(r.phase === 'shadow' ? 'shadow stage (now)' : `stage ${r.stage + 1} (now)`, (r.lastCheck as { gates?: GateRow[] } | null)?.gates)
              : []),
            '',
            table(r.devices.map((d) => ({ ...d, stage: d.stage + 1, reason: d.reason ?? '' })), ['id', 'stage', 'state', 'reason', 'desiredBundle', 'activeBundle', 'updateState']),
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
