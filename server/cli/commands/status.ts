// `flotilla status`: the whole fleet on one screen — devices online/offline/pending, updates in flight
// and failed (top reasons), open drift alerts, running rollouts and jobs, key-list expiry. Each part is
// its own request (every role may read them all).
import type { Command } from 'commander';
import { TERMINAL_STATES, UPDATE_STATES } from '../../../protocol/messages/update-states.ts';
import { call, type Api } from '../api.ts';
import { ago } from '../human.ts';
import { emit, type Output } from '../output.ts';

const IN_FLIGHT: ReadonlySet<string> = new Set(UPDATE_STATES.filter((s) => !TERMINAL_STATES.has(s)));
export async function fleetStatus(api: Api) {
  const [fleet, alerts, rollouts, jobs, keys] = await Promise.all([
    call(api.api.v1.fleet.$get({ query: { telemetry: 'false' } })),
    call(api.api.v1.alerts.$get({ query: { status: 'open', limit: '100' } })),
    call(api.api.v1.rollouts.$get({ query: {} })),
    call(api.api.v1.jobs.$get({ query: {} })),
    call(api.api.v1.keys.$get()),
  ]);
  const devices = fleet.devices;
  const approved = devices.filter((d) => d.status === 'approved');
  const failed = approved.filter((d) => d.updateState === 'failed' || d.updateState === 'rolled_back');
  const reasons = new Map<string, number>();
  for (const d of failed) reasons.set(d.lastError?.code ?? 'unknown', (reasons.get(d.lastError?.code ?? 'unknown') ?? 0) + 1);
  return {
    devices: {
      total: devices.length,
      online: approved.filter((d) => d.online).length,
      offline: approved.filter((d) => !d.online).length,
      pending: devices.filter((d) => d.status === 'pending').length,
      revoked: devices.filter((d) => d.status === 'revoked').length,
    },
    updates: {
      inFlight: approved.filter((d) => d.updateState && IN_FLIGHT.has(d.updateState)).length,
      failed: failed.length,
      topReasons: [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([code, devices]) => ({ code, devices })),
      // The most recent failures by device, so the screen names where to look and why.
      latestFailed: failed
        .sort((a, b) => (b.lastError?.at ?? '').localeCompare(a.lastError?.at ?? ''))
        .slice(0, 3)
        .map((d) => ({ id: d.id, name: d.name, code: d.lastError?.code ?? 'unknown', message: d.lastError?.message ?? null, at: d.lastError?.at ?? null })),
    },
    alerts: { open: alerts.alerts.length, latest: alerts.alerts.slice(0, 3).map((a) => ({ id: a.id, model: a.model, cohort: a.cohort, openedAt: a.openedAt })) },
    rollouts: rollouts.rollouts
      .filter((r) => r.status === 'running' || r.status === 'paused')
      .map((r) => ({ id: r.id, model: r.model, cohort: r.cohort, status: r.status, stage: `${r.stage + 1}/${r.stages.length}`, pausedBecause: r.status === 'paused' ? pausedBecause(r.lastCheck) : null })),
    jobs: jobs.jobs.filter((j) => ['queued', 'running', 'waiting'].includes(j.status)).map((j) => ({ id: j.id, model: j.model, status: j.status, createdAt: j.createdAt })),
    keylist: keys.expiry ? { version: keys.expiry.version, expiresAt: keys.expiry.expiresAt, expired: keys.expiry.expired, warning: keys.expiry.warning } : null,
  };
}

/**
 * Why a rollout is paused, from its last verdict: a gate's pause wrote `gate failed: <gate> <value> not
 * <threshold> (<reason>)` there (a drift alert on the new version is the drift gate), a pause by hand
 * `paused by <who>`; a rollout paused before verdicts said so has neither.
 */
function pausedBecause(lastCheck: Record<string, unknown> | null): string {
  const verdict = typeof lastCheck?.verdict === 'string' ? lastCheck.verdict : '';
  return verdict.startsWith('gate failed: ') || verdict.startsWith('paused by ') ? verdict : 'paused (no reason recorded)';
}

/** A message on one status line: whitespace folded, cut at `max` characters. */
function oneLine(message: string, max = 80): string {
  const m = message.replace(/\s+/g, ' ').trim();
  return m.length > max ? `${m.slice(0, max - 1)}…` : m;
}

function render(s: Awaited<ReturnType<typeof fleetStatus>>): string {
  const lines: string[] = [];
  const row = (label: string, text: string) => lines.push(`${label.padEnd(10)}${text}`);
  const d = s.devices;
  row('devices', `${d.online} online, ${d.offline} offline, ${d.pending} pending${d.revoked ? `, ${d.revoked} revoked` : ''}${d.pending ? '  (approve: flotilla devices ls --status pending)' : ''}`);
  const u = s.updates;
  row('updates', `${u.inFlight} in flight, ${u.failed} failed${u.topReasons.length ? ` (${u.topReasons.map((r) => `${r.code} ×${r.devices}`).join(', ')})` : ''}`);
  for (const f of u.latestFailed) row('failed', `${f.name ?? f.id}: ${f.code}${f.message ? ` ${oneLine(f.message)}` : ''} (${ago(f.at)})  (flotilla devices show ${f.id})`);
  const a = s.alerts;
  row('drift', a.open ? `${a.open} open alert(s): ${a.latest.map((x) => `${x.model} on ${x.cohort ?? 'all'} (${ago(x.openedAt)})`).join(', ')}  (flotilla alerts --open)` : 'no open alerts');
  const r = s.rollouts;
  row('rollouts', r.length ? r.map((x) => `${x.id} ${x.model} → ${x.cohort} ${x.status} stage ${x.stage}`).join('; ') : 'none running');
  for (const x of r.filter((y) => y.pausedBecause)) row('paused', `${x.id}: ${oneLine(x.pausedBecause!, 160)}  (flotilla rollouts show ${x.id}; resume: flotilla rollouts resume ${x.id})`);
  const j = s.jobs;
  row('jobs', j.length ? j.map((x) => `${x.id} ${x.model} ${x.status} (${ago(x.createdAt)})`).join('; ') : 'none running');
  const k = s.keylist;
  if (k === null) row('keys', 'no key list yet: run `flotilla keys init --root-key <file>`');
  else row('keys', `key list v${k.version} ${k.expired ? 'EXPIRED' : 'expires'} ${ago(k.expiresAt)}${k.warning ? ` — ${k.warning}` : ''}`);
  return lines.join('\n');
}

export function registerStatusCommand(program: Command, ctx: { api: () => Api; out: () => Output }) {
  program
    .command('status')
    .description('the whole fleet on one screen: devices, updates (failed with top reasons), drift alerts, rollouts, jobs, key-list expiry')
    .action(async () => {
      const s = await fleetStatus(ctx.api());
      emit(ctx.out(), s, () => render(s));
    });
}
