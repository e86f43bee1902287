// Cohorts and deployments: cohorts with their selector and live member count, a selector editor that
// previews the members as you type, deploy a bundle to a cohort, and each deployment's status.
import { useMemo, useState } from 'preact/hooks';
import { api, call, getOptional, readable } from '../api.ts';
import { streamStatus } from '../events.ts';
import { ago, when } from '../format.ts';
import { can } from '../session.ts';
import { ErrorBox, Loading } from '../ui/notice.tsx';
import { Status, toneOf } from '../ui/status.tsx';
import { useEventReload, useInterval, useLoad } from '../ui/use-load.ts';
import { compileSelector } from './fleet-filter.ts';
import type { FleetDevice } from './fleet-types.ts';
import { matches } from '../../../server/cohorts/selector.ts';

interface DeploymentStatus {
  deploymentId: string;
  counts: Record<string, number>;
  devices: Array<{ deviceId: string; name: string | null; bundleId: string; state: string; error?: { code: string; message: string } }>;
}

export function CohortsPage() {
  const data = useLoad(async () => {
    const [cohorts, fleet, deployments] = await Promise.all([
      call(api.api.v1.cohorts.$get({ query: {} })),
      // Membership, versions and update states; no telemetry (the server then skips its largest read).
      call(api.api.v1.fleet.$get({ query: { telemetry: 'false' } })),
      call(api.api.v1.deployments.$get({ query: { limit: '20' } })),
    ]);
    return { cohorts: cohorts.cohorts, devices: fleet.devices, deployments: deployments.deployments };
  });
  useEventReload(['device', 'deployment'], data.reload);
  useInterval(() => void data.reload(), streamStatus.value === 'live' ? 60_000 : 3_000);
  if (data.loading && !data.data) return <Loading what="cohorts" />;
  if (!data.data) return <ErrorBox error={data.error} title="Could not load cohorts" />;
  const { cohorts, devices, deployments } = data.data;
  const members = (name: string) => devices.filter((d) => d.cohorts.includes(name));
  return (
    <div class="page">
      <header class="page-head">
        <h1>Cohorts &amp; deployments</h1>
      </header>
      <ErrorBox error={data.error} title="Refresh failed (showing the last answer)" />
      <section aria-labelledby="cohorts-h">
        <h2 id="cohorts-h">Cohorts</h2>
        <div class="table-wrap">
          <table class="plain">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Selector</th>
                <th scope="col">Members</th>
                <th scope="col">Online</th>
                <th scope="col">Running</th>
                <th scope="col">Prefers variant</th>
              </tr>
            </thead>
            <tbody>
              {cohorts.map((c) => {
                const m = members(c.name);
                const running = [...new Set(m.map((d) => (d.active ? `${d.active.model}@${d.active.version}` : 'nothing')))].join(', ');
                return (
                  <tr key={c.name}>
                    <td class="strong">
                      <a href={`/?selector=${encodeURIComponent(c.selector)}`}>{c.name}</a>
                    </td>
                    <td class="mono small">{c.selector}</td>
                    <td>{m.length}</td>
                    <td>{m.filter((d) => d.online).length}</td>
                    <td class="small">{m.length ? running : '—'}</td>
                    <td>{c.preferVariant ?? '—'}</td>
                  </tr>
                );
              })}
              {!cohorts.length && (
                <tr>
                  <td colSpan={6} class="muted">
                    No cohorts yet. A cohort is a named label selector; create one below.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      </section>
      <div class="grid2">
        {can('devices:write') && <CohortEditor devices={devices} onCreated={data.reload} />}
        {can('models:write') && <DeployForm cohorts={cohorts.map((c) => c.name)} devices={devices} onDeployed={data.reload} />}
      </div>
      <section aria-labelledby="deployments-h" class="page">
        <h2 id="deployments-h">Deployments</h2>
        {deployments.map((d) => (
          <DeploymentRow key={d.id} deployment={d} devices={devices} />
        ))}
        {!deployments.length && <p class="muted">No deployments yet.</p>}
      </section>
    </div>
  );
}

function CohortEditor({ devices, onCreated }: { devices: FleetDevice[]; onCreated(): Promise<void> }) {
  const [name, setName] = useState('');
  const [selector, setSelector] = useState('');
  const [error, setError] = useState<string | null>(null);
  const compiled = useMemo(() => compileSelector(selector), [selector]);
  const preview = useMemo(() => (compiled.terms ? devices.filter((d) => matches(compiled.terms!, d.labels)) : []), [compiled.terms, devices]);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      await call(api.api.v1.cohorts.$post({ json: { name, selector } }));
      setName('');
      setSelector('');
      await onCreated();
    } catch (err) {
      setError(readable(err));
    }
  };
  return (
    <form class="card page" onSubmit={submit} aria-labelledby="new-cohort-h">
      <h2 id="new-cohort-h">New cohort</h2>
      <label>
        Name
        <input value={name} required pattern="[a-z0-9][a-z0-9._\-]{0,63}" title="lower-case letters, digits, . _ -" onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      </label>
      <label>
        Label selector
        <input
          class={compiled.error ? 'mono invalid' : 'mono'}
          value={selector}
          required
          placeholder="site=lab,!quarantine"
          aria-invalid={Boolean(compiled.error)}
          aria-describedby="cohort-preview"
          onInput={(e) => setSelector((e.target as HTMLInputElement).value)}
        />
      </label>
      <div id="cohort-preview" aria-live="polite" class="small">
        {compiled.error ? (
          <div class="selector-error">
            <pre class="mono">
              {selector}
              {'\n'}
              {' '.repeat(compiled.error.position)}^
            </pre>
            {compiled.error.message}
          </div>
        ) : compiled.terms ? (
          <span>
            Matches <b>{preview.length}</b> device{preview.length === 1 ? '' : 's'} now{preview.length ? ': ' : ''}
            {preview
              .slice(0, 8)
              .map((d) => d.name ?? d.id)
              .join(', ')}
            {preview.length > 8 ? ', …' : ''}
          </span>
        ) : (
          <span class="muted">Type a selector to preview its members.</span>
        )}
      </div>
      <ErrorBox error={error} title="Cohort not created" />
      <button type="submit" class="primary" disabled={Boolean(compiled.error) || !name || !selector}>
        Create cohort
      </button>
    </form>
  );
}

function DeployForm({ cohorts, devices, onDeployed }: { cohorts: string[]; devices: FleetDevice[]; onDeployed(): Promise<void> }) {
  const bundles = useLoad(() => call(api.api.v1.bundles.$get({ query: { limit: '200' } })));
  const [bundle, setBundle] = useState('');
  const [cohort, setCohort] = useState('');
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const count = devices.filter((d) => d.cohorts.includes(cohort)).length;
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setResult(null);
    try {
      const d = await call(api.api.v1.deployments.$post({ json: { bundle, cohort } }));
      setResult({ ok: true, text: `Deployment ${d.id} created for ${d.devices.length} device(s); watch it below.` });
      await onDeployed();
    } catch (err) {
      setResult({ ok: false, text: readable(err) });
    } finally {
      setBusy(false);
    }
  };
  const list = bundles.data?.bundles ?? [];
  return (
    <form class="card page" onSubmit={submit} aria-labelledby="deploy-h">
      <h2 id="deploy-h">Deploy to a cohort</h2>
      <ErrorBox error={bundles.error} title="Could not list bundles" />
      <label>
        Bundle
        <select value={bundle} required onChange={(e) => setBundle((e.target as HTMLSelectElement).value)}>
          <option value="">Choose a bundle…</option>
          {list.map((b) => (
            <option key={b.id} value={b.id}>
              {b.modelName}@{b.modelVersion} — {b.name} ({b.id.slice(0, 12)}, {ago(b.createdAt)})
            </option>
          ))}
        </select>
      </label>
      <label>
        Cohort
        <select value={cohort} required onChange={(e) => setCohort((e.target as HTMLSelectElement).value)}>
          <option value="">Choose a cohort…</option>
          {cohorts.map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
        </select>
      </label>
      {cohort && <p class="small muted">{count} device(s) in this cohort now; devices that join later get it too.</p>}
      {!list.length && !bundles.loading && <p class="small muted">No bundles yet: build one on the Models page or with `flotilla bundles build`.</p>}
      {result && (
        <div role={result.ok ? 'status' : 'alert'} class={`notice ${result.ok ? 'notice-ok' : 'notice-error'}`}>
          {result.text}
        </div>
      )}
      <button type="submit" class="primary" disabled={busy || !bundle || !cohort}>
        {busy ? 'Deploying…' : 'Deploy'}
      </button>
    </form>
  );
}

const ORDER = ['pending', 'downloading', 'verifying', 'staging', 'activating', 'probation', 'active', 'failed', 'rolled_back'];

function DeploymentRow({ deployment, devices }: { deployment: { id: string; bundleId: string; targetKind: string; target: string; deviceCount: number; createdAt: string; createdBy: string | null }; devices: FleetDevice[] }) {
  // The server's per-deployment status when it has one; otherwise derived from the fleet (same fields). Not the
  // superseded devices, which this page does not show (2.2 MB and 1.2–1.7 s of the server's time for a deployment
  // whose 10,000 devices moved on to a rollout).
  const status = useLoad(() => getOptional<DeploymentStatus>(`/api/v1/deployments/${encodeURIComponent(deployment.id)}/status?superseded=false`), [deployment.id, devices]);
  const derived = useMemo((): DeploymentStatus => {
    const mine = devices.filter((d) => d.desired?.deploymentId === deployment.id);
    const counts: Record<string, number> = {};
    const list = mine.map((d) => {
      const state = d.active?.bundleId === d.desired!.bundleId && d.updateState === 'active' ? 'active' : d.updateState === 'idle' || !d.updateState ? 'pending' : d.updateState;
      counts[state] = (counts[state] ?? 0) + 1;
      return { deviceId: d.id, name: d.name, bundleId: d.desired!.bundleId, state, error: state === 'failed' || state === 'rolled_back' ? (d.lastError ?? undefined) : undefined };
    });
    return { deploymentId: deployment.id, counts, devices: list };
  }, [devices, deployment.id]);
  const s = status.data ?? derived;
  const total = Object.values(s.counts).reduce((a, b) => a + b, 0);
  return (
    <article class="card" aria-label={`Deployment ${deployment.id}`} data-deployment={deployment.id}>
      <div class="row">
        <strong class="mono">{deployment.id}</strong>
        <span>
          bundle <span class="mono">{deployment.bundleId}</span> → {deployment.targetKind} <b>{deployment.target}</b>
        </span>
        <span class="muted small">
          {when(deployment.createdAt)} by {deployment.createdBy ?? 'unknown'}
        </span>
      </div>
      <div class="stage-bar" aria-label="Devices by state" data-testid="deployment-counts">
        {ORDER.concat(Object.keys(s.counts).filter((k) => !ORDER.includes(k)))
          .filter((k) => s.counts[k])
          .map((k) => (
            <span key={k} class={`tone-${toneOf(k)}`} style={{ flexGrow: s.counts[k] }} data-state={k}>
              {k.replace('_', ' ')}: {s.counts[k]}
            </span>
          ))}
        {!total && <span class="tone-idle">superseded or no devices</span>}
      </div>
      {s.devices.some((d) => d.error) && (
        <ul class="small">
          {s.devices
            .filter((d) => d.error)
            .map((d) => (
              <li key={d.deviceId}>
                <a href={`/devices/${d.deviceId}`}>{d.name ?? d.deviceId}</a>: <Status state={d.state} />
                <span class="reason">{d.error!.code}</span> {d.error!.message}
              </li>
            ))}
        </ul>
      )}
    </article>
  );
}
