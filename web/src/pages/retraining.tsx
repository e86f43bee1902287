// Retraining: jobs (trigger, parent → result, rollout), a job's log followed live (new lines by
// `after` paging, on job events or every 2 s while it runs), and cancel.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, call, readable } from '../api.ts';
import { onEvent, streamStatus } from '../events.ts';
import { ago, when } from '../format.ts';
import { can } from '../session.ts';
import { ErrorBox, Loading } from '../ui/notice.tsx';
import { Status } from '../ui/status.tsx';
import { useEventReload, useInterval, useLoad } from '../ui/use-load.ts';
import { PolicyEditor } from './retrain-policy.tsx';

export function RetrainingPage() {
  const jobs = useLoad(() => call(api.api.v1.jobs.$get({ query: { limit: '50' } })));
  const [open, setOpen] = useState<string | null>(null);
  useEventReload(['job'], jobs.reload);
  const active = jobs.data?.jobs.some((j) => j.status === 'running' || j.status === 'queued' || j.status === 'waiting') ?? false;
  useInterval(() => void jobs.reload(), streamStatus.value === 'live' ? 60_000 : active ? 2_000 : 15_000);
  if (jobs.loading && !jobs.data) return <Loading what="training jobs" />;
  if (!jobs.data) return <ErrorBox error={jobs.error} title="Could not load training jobs" />;
  return (
    <div class="page">
      <header class="page-head">
        <h1>Retraining</h1>
      </header>
      <p class="muted">
        Jobs start on a model's policy (cron or drift trigger) or by hand (<code>flotilla retrain &lt;model&gt;</code>); a finished job registers the new version as a child of
        its parent, evaluates it and may start a canary rollout.
      </p>
      <div class="table-wrap">
        <table class="plain">
          <thead>
            <tr>
              <th scope="col">Job</th>
              <th scope="col">Status</th>
              <th scope="col">Trigger</th>
              <th scope="col">Parent → result</th>
              <th scope="col">Rollout</th>
              <th scope="col">Started</th>
              <th scope="col">Error</th>
            </tr>
          </thead>
          <tbody>
            {jobs.data.jobs.map((j) => (
              <tr key={j.id}>
                <td>
                  <button type="button" class="link mono" aria-expanded={open === j.id} onClick={() => setOpen(open === j.id ? null : j.id)}>
                    {j.id}
                  </button>
                </td>
                <td>
                  <Status state={j.status} />
                </td>
                <td>{j.trigger.kind}{j.trigger.cohort ? ` (${j.trigger.cohort})` : ''}</td>
                <td class="mono small">
                  {j.parent ?? j.model} → {j.result ?? '…'}
                </td>
                <td class="mono small">{j.rollout ?? '—'}</td>
                <td class="small" title={when(j.startedAt)}>
                  {j.startedAt ? ago(j.startedAt) : 'not yet'}
                </td>
                <td class="small tone-text-bad">{j.error ?? ''}</td>
              </tr>
            ))}
            {!jobs.data.jobs.length && (
              <tr>
                <td colSpan={7} class="muted">
                  No training jobs yet.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {open && <JobLog key={open} id={open} running={['queued', 'running', 'waiting'].includes(jobs.data.jobs.find((j) => j.id === open)?.status ?? '')} onChanged={jobs.reload} />}
      {can('models:write') && <PolicyEditor />}
    </div>
  );
}

function JobLog({ id, running, onChanged }: { id: string; running: boolean; onChanged(): Promise<void> }) {
  const [lines, setLines] = useState<Array<{ id: number; at: string; stream: string; line: string }>>([]);
  const [error, setError] = useState<string | null>(null);
  const after = useRef(0);
  const more = async () => {
    try {
      const r = await call(api.api.v1.jobs[':id'].logs.$get({ param: { id }, query: { after: String(after.current), limit: '1000' } }));
      // An event and the poll can ask at once with the same `after`: keep only lines newer than the last shown.
      const fresh = r.lines.filter((l) => l.id > after.current);
      if (fresh.length) {
        after.current = fresh[fresh.length - 1].id;
        setLines((prev) => [...prev, ...fresh].slice(-5000));
      }
    } catch (err) {
      setError(readable(err));
    }
  };
  useEffect(() => void more(), [id]);
  useEffect(() => onEvent((e) => e.data.jobId === id && void more(), ['job']), [id]);
  useInterval(() => void more(), running ? 2_000 : null);
  const cancel = async () => {
    try {
      await call(api.api.v1.jobs[':id'].cancel.$post({ param: { id } }));
      await onChanged();
    } catch (err) {
      setError(readable(err));
    }
  };
  return (
    <section class="card page" aria-labelledby="log-h">
      <div class="row">
        <h2 id="log-h">Log of {id}</h2>
        {running && can('models:write') && (
          <button type="button" class="danger" onClick={() => void cancel()}>
            Cancel job
          </button>
        )}
      </div>
      <ErrorBox error={error} title="Log unavailable" />
      <pre class="code" aria-label={`Log of ${id}`} aria-live="polite">
        {lines.map((l) => `${l.at.slice(11, 19)} ${l.stream.padEnd(6)} ${l.line}`).join('\n') || 'no lines yet'}
      </pre>
    </section>
  );
}
