// Agent settings per cohort or device (telemetry interval, stats window, sample capture): the stored
// layers, and an editor; a change re-signs the affected devices' manifests on the server.
import { useState } from 'preact/hooks';
import { api, call, readable } from '../api.ts';
import { when } from '../format.ts';
import { can } from '../session.ts';
import { ErrorBox, Loading } from '../ui/notice.tsx';
import { useLoad } from '../ui/use-load.ts';

export function SettingsPage() {
  const data = useLoad(async () => {
    const [settings, cohorts] = await Promise.all([call(api.api.v1['agent-settings'].$get({ query: {} })), call(api.api.v1.cohorts.$get({ query: {} }))]);
    return { settings: settings.settings, cohorts: cohorts.cohorts };
  });
  const writable = can('devices:write') || can('models:write');
  if (data.loading && !data.data) return <Loading what="agent settings" />;
  if (!data.data) return <ErrorBox error={data.error} title="Could not load agent settings" />;
  return (
    <div class="page">
      <header class="page-head">
        <h1>Agent settings</h1>
      </header>
      <p class="muted">Each device runs the defaults, overlaid by its cohort's settings, overlaid by its own. Changes reach the devices in their next signed manifest.</p>
      <div class="table-wrap">
        <table class="plain">
          <thead>
            <tr>
              <th scope="col">Scope</th>
              <th scope="col">Target</th>
              <th scope="col">Telemetry interval</th>
              <th scope="col">Stats window</th>
              <th scope="col">Sample capture</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {data.data.settings.map((s) => (
              <tr key={`${s.scope}/${s.target}`}>
                <td>{s.scope}</td>
                <td class="mono">{s.target}</td>
                <td>{s.settings.telemetryIntervalS !== undefined ? `${s.settings.telemetryIntervalS} s` : 'inherited'}</td>
                <td>{s.settings.statsWindowS !== undefined ? `${s.settings.statsWindowS} s` : 'inherited'}</td>
                <td class="small mono">{s.settings.sampleCapture ? JSON.stringify(s.settings.sampleCapture) : 'inherited'}</td>
                <td class="small">
                  {when(s.updatedAt)} by {s.updatedBy ?? 'unknown'}
                </td>
              </tr>
            ))}
            {!data.data.settings.length && (
              <tr>
                <td colSpan={6} class="muted">
                  Every device runs the defaults.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {writable && <Editor cohorts={data.data.cohorts.map((c) => c.name)} onSaved={data.reload} />}
    </div>
  );
}

function Editor({ cohorts, onSaved }: { cohorts: string[]; onSaved(): Promise<void> }) {
  const [scope, setScope] = useState<'cohort' | 'device'>('cohort');
  const [target, setTarget] = useState('');
  const [telemetry, setTelemetry] = useState('');
  const [window, setWindow] = useState('');
  const [capture, setCapture] = useState<'inherit' | 'on' | 'off'>('inherit');
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  const save = async (e: Event) => {
    e.preventDefault();
    setResult(null);
    const json: Record<string, unknown> = {};
    if (telemetry) json.telemetryIntervalS = Number(telemetry);
    if (window) json.statsWindowS = Number(window);
    if (capture !== 'inherit') json.sampleCapture = { enabled: capture === 'on' };
    try {
      await call(api.api.v1['agent-settings'][':scope'][':target'].$put({ param: { scope, target }, json }));
      setResult({ ok: true, text: `Saved for ${scope} ${target}; its devices get re-signed manifests.` });
      await onSaved();
    } catch (err) {
      setResult({ ok: false, text: readable(err) });
    }
  };
  return (
    <form class="card row" onSubmit={save} aria-labelledby="settings-edit-h">
      <h2 id="settings-edit-h" style={{ flexBasis: '100%' }}>
        Set the settings of a cohort or device
      </h2>
      <label>
        Scope
        <select value={scope} onChange={(e) => setScope((e.target as HTMLSelectElement).value as 'cohort' | 'device')}>
          <option value="cohort">cohort</option>
          <option value="device">device</option>
        </select>
      </label>
      <label>
        {scope === 'cohort' ? 'Cohort name' : 'Device id'}
        <input list={scope === 'cohort' ? 'settings-cohorts' : undefined} value={target} required onInput={(e) => setTarget((e.target as HTMLInputElement).value)} />
        <datalist id="settings-cohorts">
          {cohorts.map((c) => (
            <option key={c} value={c} />
          ))}
        </datalist>
      </label>
      <label>
        Telemetry interval (s, 1–3600)
        <input type="number" min={1} max={3600} value={telemetry} placeholder="inherit" onInput={(e) => setTelemetry((e.target as HTMLInputElement).value)} />
      </label>
      <label>
        Stats window (s, 5–86400)
        <input type="number" min={5} max={86400} value={window} placeholder="inherit" onInput={(e) => setWindow((e.target as HTMLInputElement).value)} />
      </label>
      <label>
        Sample capture
        <select value={capture} onChange={(e) => setCapture((e.target as HTMLSelectElement).value as typeof capture)}>
          <option value="inherit">inherit</option>
          <option value="on">on</option>
          <option value="off">off</option>
        </select>
      </label>
      <button type="submit" class="primary">
        Save settings
      </button>
      {result && <div class={`notice ${result.ok ? 'notice-ok' : 'notice-error'}`} role={result.ok ? 'status' : 'alert'} style={{ flexBasis: '100%' }}>{result.text}</div>}
    </form>
  );
}
