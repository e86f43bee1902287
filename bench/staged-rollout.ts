// A staged rollout measured from the API, shared by the shadow and scale benches: creates the rollout,
// polls it, and returns one row per stage (from the stage's start until its last device is active or
// failed, and when 95 % were active) plus one for the whole rollout, start to `succeeded`.
// Devices that never reported (never connected) cannot become active and are not waited for.
import { waitFor } from '../agent/testing/harness.ts';
import type { BenchRow } from './lib.ts';

export interface StagedRolloutOptions {
  /** An admin API call that throws on an error answer. */
  api(method: string, path: string, body?: unknown): Promise<any>;
  bundle: string;
  cohort: string;
  stages: number[];
  /** Devices in the cohort that are connected (for the names of the rows). */
  devices: number;
  /** What the rows are compared with (e.g. a direct deployment measured in the same run). */
  baseline?: { label: string; seconds: number };
  /** Extra rollout fields (gates, bakeS); bakeS defaults to 0. */
  body?: Record<string, unknown>;
  /** How the scheduler ticks, for the first stage's note. */
  tickNote?: string;
  timeoutMs?: number;
}

type RolloutDevice = { stage: number; activeBundle: string | null; state: string; reason?: string };

export async function measureStagedRollout(o: StagedRolloutOptions): Promise<BenchRow[]> {
  const { stages } = o;
  const rows: BenchRow[] = [];
  const t = performance.now();
  const r = await o.api('POST', '/api/v1/rollouts', { bundle: o.bundle, cohort: o.cohort, stages, bakeS: 0, ...o.body });
  const stageStart = [t];
  const stageDone: number[] = [];
  const stage95: number[] = [];
  let last: { status: string; devices: RolloutDevice[]; lastCheck?: { verdict?: string } } | undefined;
  let endedAt: number | undefined;
  const inStage = (k: number) => last!.devices.filter((d) => d.stage <= k && d.activeBundle !== null);
  await waitFor(async () => {
    last = await o.api('GET', `/api/v1/rollouts/${r.id}`);
    const now = performance.now();
    for (let k = stageDone.length; k < stages.length; k++) {
      const members = inStage(k);
      const active = members.filter((d) => d.state === 'active').length;
      if (stage95[k] === undefined && members.length && active >= 0.95 * members.length) stage95[k] = now;
      if (!members.length || !members.every((d) => d.state === 'active' || d.state === 'failed')) break;
      stageDone.push(now);
      stageStart.push(now);
    }
    // The rollout may say `succeeded` before its devices' reports say `active` (with no bake and
    // permissive gates a stage advances at once; at 1,000 devices the updates take minutes): keep
    // polling (bounded) so the stages' rows are measured, not reported as not reached.
    if (last!.status === 'running') return false;
    endedAt ??= now;
    return last!.status !== 'succeeded' || stageDone.length === stages.length || now - endedAt > 5 * 60_000;
  }, 'the rollout ends', o.timeoutMs ?? 10 * 60_000, 250);
  const vs = (s: number) => (o.baseline ? { baseline: o.baseline.label, baselineValue: o.baseline.seconds, ratio: s / o.baseline.seconds } : {});
  for (const [k, f] of stages.entries()) {
    const all = inStage(k).length;
    const added = all - (k ? inStage(k - 1).length : 0);
    if (stageDone[k] === undefined) {
      rows.push({ benchmark: `rollout stage ${k + 1} (${f * 100} %): all ${all} active`, value: NaN, unit: 's', note: `not reached; rollout ${last!.status}: ${last!.lastCheck?.verdict}` });
      continue;
    }
    const s = (stageDone[k] - stageStart[k]) / 1000;
    const failed = last!.devices.filter((d) => d.stage <= k && d.state === 'failed');
    const why = failed.length ? `; ${failed.length} failed (${failed[0].reason})` : '';
    const at95 = `95 % active after ${((stage95[k] - stageStart[k]) / 1000).toFixed(1)} s`;
    rows.push({ benchmark: `rollout stage ${k + 1} (${f * 100} %, ${added} new devices): all ${all} done`, value: s, unit: 's', ...vs(s), note: `${at95}${why}; ${k === 0 ? `from the rollout request${o.tickNote ? `; ${o.tickNote}` : ''}` : 'from the previous stage done'}` });
  }
  const endS = ((endedAt ?? performance.now()) - t) / 1000;
  rows.push({ benchmark: `staged rollout to ${o.devices} devices, start to ${last!.status}`, value: endS, unit: 's', ...vs(endS), note: last!.status });
  return rows;
}
