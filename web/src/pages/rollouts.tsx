// Rollouts: start one (cohort picker with member count, stages, bake time, gates), watch each stage
// and its gates live, pause / resume / abort / roll back.
import { useState } from 'preact/hooks';
import { api, call, readable } from '../api.ts';
import { streamStatus } from '../events.ts';
import { ago, pct, when } from '../format.ts';
import { can } from '../session.ts';
import { ErrorBox, Loading } from '../ui/notice.tsx';
import { Status } from '../ui/status.tsx';
import { useEventReload, useInterval, useLoad } from '../ui/use-load.ts';
import { gateRows, show, stateText } from './rollout-gates.ts';
import { StartRollout } from './start-rollout.tsx';

export function RolloutsPage() {
  const data = useLoad(async () => {
    // The cohort picker shows member counts only: the server counts them (not the whole fleet sent here).
    const [rollouts, cohorts] = await Promise.all([call(api.api.v1.rollouts.$get({ query: { limit: '30' } })), call(api.api.v1.cohorts.$get({ query: { members: 'count' } }))]);
    return { rollouts: rollouts.rollouts, cohorts: cohorts.cohorts };
  });
  useEventReload(['rollout', 'device'], data.reload);
  const running = data.data?.rollouts.some((r) => r.status === 'running') ?? false;
  useInterval(() => void data.reload(), streamStatus.value === 'live' ? 60_000 : running ? 2_000 : 10_000);
  if (data.loading && !data.data) return <Loading what="rollouts" />;
  if (!data.data) return <ErrorBox error={data.error} title="Could not load rollouts" />;
  const { rollouts, cohorts } = data.data;
  return (
    <div class="page">
      <header class="page-head">
        <h1>Rollouts</h1>
      </header>
      <ErrorBox error={data.error} title="Refresh failed (showing the last answer)" />
      {can('models:write') && <StartRollout cohorts={cohorts.map((c) => ({ name: c.name, members: c.memberCount ?? 0 }))} onStarted={data.reload} />}
      {rollouts.map((r) => (
        <RolloutCard key={r.id} rollout={r} onChanged={data.reload} />
      ))}
      {!rollouts.length && <p class="muted">No rollouts yet. A rollout deploys a bundle to a cohort in stages, checking health gates between them.</p>}
    </div>
  );
}

type Rollout = Awaited<ReturnType<typeof listType>>['rollouts'][number];
const listType = () => call(api.api.v1.rollouts.$get({ query: {} }));

function RolloutCard({ rollout: r, onChanged }: { rollout: Rollout; onChanged(): Promise<void> }) {
  const [error, setError] = useState<string | null>(null);
  const act = async (what: 'pause' | 'resume' | 'abort' | 'rollback') => {
    if ((what === 'abort' || what === 'rollback') && !confirm(what === 'rollback' ? 'Abort and put the previous bundle back on the devices already updated?' : 'Abort this rollout? Devices keep what they have.')) return;
    setError(null);
    try {
      const param = { id: r.id };
      if (what === 'pause') await call(api.api.v1.rollouts[':id'].pause.$post({ param, json: {} }));
      else if (what === 'resume') await call(api.api.v1.rollouts[':id'].resume.$post({ param, json: {} }));
      else await call(api.api.v1.rollouts[':id'].abort.$post({ param, json: { rollback: what === 'rollback' } }));
      await onChanged();
    } catch (err) {
      setError(readable(err));
    }
  };
  const check = (r.lastCheck ?? {}) as Record<string, unknown>;
  return (
    <article class="card page" aria-label={`Rollout ${r.id}`} data-rollout={r.id}>
      <div class="row">
        <strong class="mono">{r.id}</strong>
        <Status state={r.status} />
        <span>
          {r.model} ({r.bundle}) → cohort <b>{r.cohort}</b>
        </span>
        <span class="muted small">
          started {when(r.createdAt)}, stage since {ago(r.stageStartedAt)}
        </span>
      </div>
      <ol class="stage-bar" aria-label="Stages">
        {r.stages.map((s, i) => (
          <li key={i} class={i < r.stage || r.status === 'succeeded' ? 'tone-ok' : i === r.stage ? (r.status === 'running' ? 'tone-busy' : 'tone-warn') : 'tone-idle'} aria-current={i === r.stage ? 'step' : undefined}>
            Stage {i + 1}: {pct(s, 0)}
          </li>
        ))}
      </ol>
      <dl class="facts small">
        <dt>Bake time</dt>
        <dd>{r.bakeS} s per stage</dd>
        <dt>When a gate fails</dt>
        <dd>{String((r.gates as Record<string, unknown>).onFailure ?? 'pause')}</dd>
        {r.shadow && (
          <>
            <dt>Shadow stage</dt>
            <dd data-shadow>
              {pct(r.shadow.share, 0)} of requests for {r.shadow.durationS} s (windows of {r.shadow.windowS} s), {r.phase === 'shadow' ? 'running' : 'done'}
            </dd>
          </>
        )}
        {typeof check.verdict === 'string' && (
          <>
            <dt>Last check</dt>
            <dd class="small">
              {check.verdict} {typeof check.at === 'string' ? `(${ago(check.at)})` : ''}
            </dd>
          </>
        )}
      </dl>
      <Gates rollout={r} check={r.lastCheck} />
      {can('models:write') && (r.status === 'running' || r.status === 'paused') && (
        <div class="actions">
          {r.status === 'running' && (
            <button type="button" onClick={() => void act('pause')}>
              Pause
            </button>
          )}
          {r.status === 'paused' && (
            <button type="button" onClick={() => void act('resume')}>
              Resume
            </button>
          )}
          <button type="button" class="danger" onClick={() => void act('abort')}>
            Abort
          </button>
          <button type="button" class="danger" onClick={() => void act('rollback')}>
            Roll back
          </button>
        </div>
      )}
      <ErrorBox error={error} title="Action refused" />
    </article>
  );
}

/** Each gate's measured value against its threshold, for the stage the last check looked at. */
function Gates({ rollout: r, check }: { rollout: Rollout; check: Record<string, unknown> | null }) {
  const rows = gateRows(r.gates as Record<string, unknown>, check);
  if (!rows.length) return null;
  const stage = typeof check?.stage === 'number' ? check.stage : r.stage;
  return (
    <div class="table-wrap">
      <table class="plain small" aria-label={`Gates of rollout ${r.id}`}>
        <caption class="muted small">
          Stage {stage + 1} of {r.stages.length}
          {stage > 0 ? ` (stages 1–${stage} passed their gates)` : ''}
        </caption>
        <thead>
          <tr>
            <th scope="col">Gate</th>
            <th scope="col">Measured</th>
            <th scope="col">Threshold</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((g) => (
            <tr key={g.name} data-gate={g.name}>
              <th scope="row">{g.name}</th>
              <td class="mono">{show(g.value)}</td>
              <td class="mono">
                {g.bound === 'max' ? '≤ ' : g.bound === 'min' ? '≥ ' : ''}
                {show(g.threshold)}
              </td>
              <td>
                <Status state={g.ok === null ? 'waiting' : g.ok ? 'active' : 'failed'} text={stateText(g)} />
                {g.reason && <span class="muted small"> {g.reason}</span>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
