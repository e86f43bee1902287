// Device: facts and identity, editable labels, update history with reasons, telemetry charts over a
// chosen window, monitoring losses, and ping / rollback for operators.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, call, readable } from '../api.ts';
import { streamStatus } from '../events.ts';
import { ago, bytes, labelsText, num, pct, when } from '../format.ts';
import { can } from '../session.ts';
import { TimeChart } from '../ui/chart.tsx';
import { ErrorBox, Info, Loading } from '../ui/notice.tsx';
import { OnlineDot, Status } from '../ui/status.tsx';
import { useEventReload, useInterval, useLoad } from '../ui/use-load.ts';

interface Reported {
  agentVersion?: string;
  state?: string;
  active?: { bundleId: string; bundleName: string; model: { name: string; version: number }; counter: number; activatedAt: string } | null;
  lastError?: { code: string; message: string; at: string } | null;
  transitions?: Array<{ state: string; at: string; counter?: number; reason?: string }>;
  progress?: { bytes: number; totalBytes: number };
}

const WINDOWS = [
  { id: '15m', label: '15 min', seconds: 900 },
  { id: '1h', label: '1 h', seconds: 3600 },
  { id: '24h', label: '24 h', seconds: 86400 },
  { id: '7d', label: '7 d', seconds: 7 * 86400 },
];
const POINTS = 12;

export function DevicePage({ params }: { params: Record<string, string> }) {
  const id = params.id;
  const device = useLoad(() => call(api.api.v1.devices[':id'].$get({ param: { id } })), [id]);
  useEventReload(['device'], device.reload, (e) => e.subject === id);
  useInterval(() => void device.reload(), streamStatus.value === 'live' ? 60_000 : 5_000);
  if (device.loading && !device.data) return <Loading what="the device" />;
  if (!device.data) return <ErrorBox error={device.error} title={`Could not load device ${id}`} />;
  const d = device.data;
  const rep = (d.reported ?? {}) as Reported;
  return (
    <div class="page">
      <header class="page-head">
        <h1>
          <OnlineDot online={d.online} /> {d.name ?? d.id}
        </h1>
        <Status state={d.status} />
        <Status state={d.updateState} />
        <span class="muted">last seen {ago(d.lastSeen)}</span>
      </header>
      <ErrorBox error={device.error} title="Refresh failed" />
      {rep.lastError && (d.updateState === 'failed' || d.updateState === 'rolled_back') && (
        <div class="notice notice-error" role="alert">
          <strong>Last update failed: {rep.lastError.code}</strong>
          <span>{rep.lastError.message}</span>
          <span class="small">{when(rep.lastError.at)}</span>
        </div>
      )}
      <div class="grid2">
        <section class="card" aria-labelledby="facts-h">
          <h2 id="facts-h">Identity and facts</h2>
          <dl class="facts">
            <dt>Device id</dt>
            <dd class="mono">{d.id}</dd>
            <dt>Running</dt>
            <dd>{rep.active ? `${rep.active.model.name}@${rep.active.model.version} (bundle ${rep.active.bundleName}, counter ${rep.active.counter})` : 'nothing active'}</dd>
            <dt>Desired</dt>
            <dd>{d.desired ? `bundle ${d.desired.bundleId}${d.desired.cohort ? ` via cohort ${d.desired.cohort}` : ''}, counter ${d.desired.counter}` : 'none'}</dd>
            <dt>Agent</dt>
            <dd>{rep.agentVersion ?? '—'}</dd>
            <dt>Enrolled</dt>
            <dd>{when(d.enrolledAt)}</dd>
            {Object.entries(d.facts).map(([k, v]) => [<dt key={`k${k}`}>{k}</dt>, <dd key={`v${k}`}>{typeof v === 'object' ? JSON.stringify(v) : String(v)}</dd>])}
          </dl>
        </section>
        <Labels id={id} labels={d.labels} onSaved={device.reload} />
      </div>
      {can('devices:write') && <Commands id={id} online={d.online} />}
      <Telemetry id={id} />
      <section class="card" aria-labelledby="history-h">
        <h2 id="history-h">Update history</h2>
        {rep.transitions?.length ? (
          <div class="table-wrap">
            <table class="plain">
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">State</th>
                  <th scope="col">Counter</th>
                  <th scope="col">Reason</th>
                </tr>
              </thead>
              <tbody>
                {[...rep.transitions].reverse().map((t, i) => (
                  <tr key={i}>
                    <td>{when(t.at)}</td>
                    <td>
                      <Status state={t.state} />
                    </td>
                    <td>{t.counter ?? '—'}</td>
                    <td class="mono small">{t.reason ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : (
          <p class="muted">No updates reported yet.</p>
        )}
      </section>
    </div>
  );
}

function Labels({ id, labels, onSaved }: { id: string; labels: Record<string, string>; onSaved(): Promise<void> }) {
  const [text, setText] = useState(labelsText(labels));
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  useEffect(() => setText(labelsText(labels)), [labels]);
  const save = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setSaved(false);
    const next: Record<string, string> = {};
    for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
      const eq = part.indexOf('=');
      if (eq <= 0) return setError(`"${part}" is not key=value`);
      next[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
    }
    const remove = Object.keys(labels).filter((k) => !(k in next));
    try {
      await call(api.api.v1.devices[':id'].labels.$patch({ param: { id }, json: { set: next, remove } }));
      setSaved(true);
      await onSaved();
    } catch (err) {
      setError(readable(err));
    }
  };
  return (
    <section class="card" aria-labelledby="labels-h">
      <h2 id="labels-h">Labels</h2>
      <form class="row" onSubmit={save}>
        <label class="grow">
          Labels (comma separated key=value)
          <input class="mono" value={text} readOnly={!can('devices:write')} onInput={(e) => (setText((e.target as HTMLInputElement).value), setSaved(false))} />
        </label>
        {can('devices:write') && (
          <button type="submit" class="primary">
            Save labels
          </button>
        )}
      </form>
      {saved && <p role="status" class="tone-text-ok small">Saved; cohort membership follows at once.</p>}
      <ErrorBox error={error} title="Labels not saved" />
    </section>
  );
}

function Commands({ id, online }: { id: string; online: boolean }) {
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const send = async (command: 'ping' | 'rollback') => {
    if (command === 'rollback' && !confirm('Roll this device back to its previous bundle?')) return;
    setBusy(true);
    setResult(null);
    const t0 = performance.now();
    try {
      const r = await call(api.api.v1.devices[':id'].commands.$post({ param: { id }, json: { command, args: {}, timeoutMs: 10_000 } }));
      const ms = Math.round(performance.now() - t0);
      setResult(r.status === 'ok' ? { ok: true, text: `${command}: ok in ${ms} ms${r.data ? ` — ${JSON.stringify(r.data).slice(0, 200)}` : ''}` } : { ok: false, text: `${command}: ${r.error?.code}: ${r.error?.message}` });
    } catch (err) {
      setResult({ ok: false, text: readable(err) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="card row" aria-label="Device commands">
      <button type="button" disabled={busy || !online} onClick={() => void send('ping')}>
        Ping
      </button>
      <button type="button" class="danger" disabled={busy || !online} onClick={() => void send('rollback')}>
        Roll back
      </button>
      {!online && <span class="muted small">The device is offline; commands need it connected.</span>}
      {result && (
        <span role="status" class={result.ok ? 'tone-text-ok' : 'tone-text-bad'}>
          {result.text}
        </span>
      )}
    </section>
  );
}

const REASON_COLORS = ['#b91c1c', '#a16207', '#7c3aed', '#0f766e', '#1d4ed8', '#be185d'];

/** One series per error reason (count per step, 0 where the step had none of it), most frequent first. */
function errorSeries(points: Array<{ errorsByReason: Record<string, number> }>) {
  const totals = new Map<string, number>();
  for (const p of points) for (const [k, n] of Object.entries(p.errorsByReason)) totals.set(k, (totals.get(k) ?? 0) + n);
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([reason], i) => ({ label: reason, color: REASON_COLORS[i % REASON_COLORS.length], values: points.map((p) => p.errorsByReason[reason] ?? 0) }));
}

function Telemetry({ id }: { id: string }) {
  const [win, setWin] = useState(WINDOWS[0]);
  // /telemetry answers one summary per window; the charts ask for POINTS consecutive slices of it.
  const series = useLoad(async () => {
    const end = Date.now();
    const step = win.seconds / POINTS;
    const ends = Array.from({ length: POINTS }, (_, i) => end - (POINTS - 1 - i) * step * 1000);
    const stepText = `${Math.max(1, Math.round(step / 60))}m`;
    const [whole, ...slices] = await Promise.all([
      call(api.api.v1.telemetry.$get({ query: { device: id, window: win.id } })),
      ...ends.map((t) => call(api.api.v1.telemetry.$get({ query: { device: id, window: stepText, end: new Date(t).toISOString() } }))),
    ]);
    return { whole, slices, times: ends.map((t) => t / 1000) };
  }, [id, win.id]);
  const charts = useMemo(() => {
    if (!series.data) return null;
    const s = series.data.slices;
    return {
      rate: [
        { label: 'req/s', color: '#1d4ed8', values: s.map((x) => x.ratePerSecond) },
        { label: 'errors/s', color: '#b91c1c', values: s.map((x) => x.errorsPerSecond) },
      ],
      latency: [
        { label: 'p50', color: '#15803d', values: s.map((x) => x.latency.p50) },
        { label: 'p95', color: '#a16207', values: s.map((x) => x.latency.p95) },
        { label: 'p99', color: '#b91c1c', values: s.map((x) => x.latency.p99) },
      ],
    };
  }, [series.data]);
  // Per-minute series from the raw reports: rate, CPU, memory and outbox backlog over time.
  const perMinute = useLoad(() => call(api.api.v1.telemetry.series.$get({ query: { device: id, window: win.id } })), [id, win.id]);
  const resourceCharts = useMemo(() => {
    const p = perMinute.data?.points;
    if (!p?.length) return null;
    return {
      times: p.map((x) => Date.parse(x.t) / 1000),
      rate: [
        { label: 'inferences/s', color: '#1d4ed8', values: p.map((x) => x.inferencesPerSecond) },
        { label: 'errors/s', color: '#b91c1c', values: p.map((x) => x.errorsPerSecond) },
      ],
      cpu: [
        { label: 'mean', color: '#1d4ed8', values: p.map((x) => x.cpuMean * 100) },
        { label: 'max', color: '#a16207', values: p.map((x) => x.cpuMax * 100) },
      ],
      memory: [{ label: 'RSS max', color: '#7c3aed', values: p.map((x) => x.rssMaxBytes / 2 ** 20) }],
      outbox: [{ label: 'backlog max', color: '#0f766e', values: p.map((x) => x.outboxPendingMax) }],
      errors: errorSeries(p),
    };
  }, [perMinute.data]);
  const w = series.data?.whole;
  const res = w?.resources.devices[0];
  return (
    <section class="page" aria-labelledby="tele-h">
      <div class="row">
        <h2 id="tele-h">Telemetry</h2>
        <div class="tabs" role="group" aria-label="Telemetry window">
          {WINDOWS.map((x) => (
            <button type="button" key={x.id} aria-pressed={x.id === win.id} onClick={() => setWin(x)}>
              {x.label}
            </button>
          ))}
        </div>
      </div>
      <ErrorBox error={series.error} title="Telemetry unavailable" />
      {w && w.reports === 0 && <Info>No telemetry from this device in the last {win.label}. Agents report every interval once they run a model.</Info>}
      {charts && series.data && (
        <div class="grid2">
          <TimeChart title="Requests and errors per second" times={series.data.times} series={charts.rate} />
          <TimeChart title="Latency (ms)" times={series.data.times} series={charts.latency} unit="ms" />
        </div>
      )}
      <ErrorBox error={perMinute.error} title="Telemetry series unavailable" />
      {resourceCharts && perMinute.data && (
        <div class="grid2" aria-label={`Per ${perMinute.data.stepS / 60} min series`} role="group" data-points={perMinute.data.points.length}>
          <TimeChart title={`Inference rate per ${perMinute.data.stepS / 60} min`} times={resourceCharts.times} series={resourceCharts.rate} unit="/s" />
          <TimeChart title="CPU (%)" times={resourceCharts.times} series={resourceCharts.cpu} unit="%" />
          <TimeChart title="Memory (MB)" times={resourceCharts.times} series={resourceCharts.memory} unit="MB" />
          <TimeChart title="Outbox backlog (messages)" times={resourceCharts.times} series={resourceCharts.outbox} />
          {resourceCharts.errors.length ? (
            <div data-errors={JSON.stringify(Object.fromEntries(resourceCharts.errors.map((e) => [e.label, e.values])))}>
              <TimeChart title={`Errors by reason per ${perMinute.data.stepS / 60} min`} times={resourceCharts.times} series={resourceCharts.errors} />
            </div>
          ) : (
            <p class="card muted small">No errors in the last {win.label}.</p>
          )}
        </div>
      )}
      {w && (
        <div class="grid2">
          <section class="card" aria-label="Window summary">
            <dl class="facts">
              <dt>Inferences</dt>
              <dd>{w.inferences}</dd>
              <dt>Error ratio</dt>
              <dd>{pct(w.errorRatio)}</dd>
              <dt>Errors by reason</dt>
              <dd class="mono small">{Object.entries(w.errors).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'}</dd>
              <dt>Latency p50 / p95 / p99</dt>
              <dd>
                {num(w.latency.p50)} / {num(w.latency.p95)} / {num(w.latency.p99)} ms
              </dd>
            </dl>
          </section>
          <section class="card" aria-label="Resources and monitoring">
            <dl class="facts">
              <dt>CPU</dt>
              <dd>{res ? pct(res.cpu) : '—'}</dd>
              <dt>Memory (RSS)</dt>
              <dd>{bytes(res?.rssBytes)}</dd>
              <dt>Disk free</dt>
              <dd>{bytes(res?.diskFreeBytes)}</dd>
              <dt>Outbox backlog</dt>
              <dd>{res?.outboxPending ?? '—'} messages</dd>
              <dt>Monitoring lost</dt>
              <dd>
                {w.monitoring.lost
                  ? `${w.monitoring.lost.outboxDropped} dropped, ${w.monitoring.lost.outboxCorrupt} corrupt, ${w.monitoring.lost.statsDropped} stats samples dropped`
                  : 'none reported'}
              </dd>
            </dl>
          </section>
        </div>
      )}
    </section>
  );
}
