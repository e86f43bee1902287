// Audit log (admins): who did what to which target, newest first, filterable by actor and action.
import { useState } from 'preact/hooks';
import { api, call } from '../api.ts';
import { when } from '../format.ts';
import { ErrorBox, Loading } from '../ui/notice.tsx';
import { useLoad } from '../ui/use-load.ts';

export function AuditPage() {
  const [action, setAction] = useState('');
  const [actor, setActor] = useState('');
  const log = useLoad(() => call(api.api.v1.audit.$get({ query: { limit: '500', ...(action ? { action } : {}), ...(actor ? { actor } : {}) } })), [action, actor]);
  return (
    <div class="page">
      <header class="page-head">
        <h1>Audit log</h1>
      </header>
      <div class="filters">
        <label>
          Action
          <input value={action} placeholder="e.g. device.label" onChange={(e) => setAction((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Actor
          <input value={actor} onChange={(e) => setActor((e.target as HTMLInputElement).value)} />
        </label>
      </div>
      <ErrorBox error={log.error} title="Could not read the audit log" />
      {log.loading && !log.data ? (
        <Loading what="the audit log" />
      ) : (
        <div class="table-wrap">
          <table class="plain">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Actor</th>
                <th scope="col">Action</th>
                <th scope="col">Target</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {(log.data?.entries ?? []).map((e) => (
                <tr key={e.id}>
                  <td class="small">{when(e.at)}</td>
                  <td class="small">{e.actor}</td>
                  <td class="mono small">{e.action}</td>
                  <td class="mono small">{e.target}</td>
                  <td class="mono small">{e.details ? JSON.stringify(e.details).slice(0, 160) : ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
