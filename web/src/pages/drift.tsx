// Drift: for a model version and cohort, a feature × time heatmap of drift scores against each
// feature's threshold (one /drift answer per time slice), the latest slice's method / score / p-value
// per feature, and drift alerts with their webhook deliveries.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, call } from '../api.ts';
import { num, when } from '../format.ts';
import { binLabels, Histogram } from '../ui/histogram.tsx';
import { ErrorBox, Info, Loading } from '../ui/notice.tsx';
import { Status } from '../ui/status.tsx';
import { useEventReload, useInterval, useLoad } from '../ui/use-load.ts';

const SPANS = [
  { id: '1h', label: '1 h', seconds: 3600 },
  { id: '24h', label: '24 h', seconds: 86400 },
  { id: '7d', label: '7 d', seconds: 7 * 86400 },
];
const SLICES = 12;

export function DriftPage() {
  const choices = useLoad(async () => {
    const [models, cohorts] = await Promise.all([call(api.api.v1.models.$get({ query: {} })), call(api.api.v1.cohorts.$get({ query: {} }))]);
    return { models: models.models.filter((m) => m.latest !== null), cohorts: cohorts.cohorts };
  });
  const [model, setModel] = useState('');
  const [cohort, setCohort] = useState('');
  const [span, setSpan] = useState(SPANS[1]);
  useEffect(() => {
    const m = choices.data?.models[0];
    if (!model && m) setModel(`${m.name}@${m.latest}`);
  }, [choices.data, model]);
  if (choices.loading && !choices.data) return <Loading what="models and cohorts" />;
  if (!choices.data) return <ErrorBox error={choices.error} title="Could not load models" />;
  return (
    <div class="page">
      <header class="page-head">
        <h1>Drift</h1>
      </header>
      <div class="filters">
        <label>
          Model version (name@N)
          <input list="drift-models" value={model} onChange={(e) => setModel((e.target as HTMLInputElement).value)} class="mono" />
          <datalist id="drift-models">
            {choices.data.models.flatMap((m) => Array.from({ length: m.latest! }, (_, i) => <option key={`${m.name}@${i + 1}`} value={`${m.name}@${i + 1}`} />))}
          </datalist>
        </label>
        <label>
          Cohort
          <select value={cohort} onChange={(e) => setCohort((e.target as HTMLSelectElement).value)}>
            <option value="">every device running it</option>
            {choices.data.cohorts.map((c) => (
              <option key={c.name} value={c.name}>
                {c.name}
              </option>
            ))}
          </select>
        </label>
        <div class="tabs" role="group" aria-label="Time span">
          {SPANS.map((s) => (
            <button type="button" key={s.id} aria-pressed={s.id === span.id} onClick={() => setSpan(s)}>
              {s.label}
            </button>
          ))}
        </div>
      </div>
      {model ? <Heatmap model={model} cohort={cohort} span={span} /> : <Info>No model versions yet.</Info>}
      <Alerts />
    </div>
  );
}

function Heatmap({ model, cohort, span }: { model: string; cohort: string; span: (typeof SPANS)[number] }) {
  const slices = useLoad(async () => {
    const end = Date.now();
    const step = span.seconds / SLICES;
    const ends = Array.from({ length: SLICES }, (_, i) => new Date(end - (SLICES - 1 - i) * step * 1000).toISOString());
    const window = `${Math.round(step)}s`;
    // The latest slice also brings each feature's reference and live bins (the histogram overlay).
    const answers = await Promise.all(ends.map((e, i) => call(api.api.v1.drift.$get({ query: { model, ...(cohort ? { cohort } : {}), window, end: e, ...(i === SLICES - 1 ? { histograms: 'true' as const } : {}) } }))));
    return { ends, answers };
  }, [model, cohort, span.id]);
  const features = useMemo(() => {
    const names = new Set<string>();
    for (const a of slices.data?.answers ?? []) for (const f of [...a.features, ...a.outputs]) names.add(f.feature);
    return [...names];
  }, [slices.data]);
  const [chosen, setChosen] = useState<string | null>(null);
  if (slices.loading && !slices.data) return <Loading what="drift" />;
  if (!slices.data) return <ErrorBox error={slices.error} title={`No drift read-out for ${model}`} />;
  const latest = slices.data.answers[SLICES - 1];
  // The histogram shows the chosen feature, else the one furthest past its threshold.
  const worst = [...latest.features].sort((a, b) => (b.score ?? -1) / b.threshold - (a.score ?? -1) / a.threshold)[0]?.feature;
  const shown = latest.histograms?.find((h) => h.feature === (chosen ?? worst));
  const cell = (i: number, feature: string) => [...slices.data!.answers[i].features, ...slices.data!.answers[i].outputs].find((f) => f.feature === feature);
  return (
    <div class="page">
      <section class="card" aria-labelledby="heat-h">
        <h2 id="heat-h">
          Drift score per feature over {span.label} <span class="muted small">(colour: score ÷ threshold; red at or past the threshold)</span>
        </h2>
        <p class="small">
          Latest window: <Verdict verdict={latest.dataset.verdict} /> — {latest.dataset.driftedCount} of {latest.dataset.evaluated} features drifted (dataset drift at {Math.round(latest.dataset.threshold * 100)} %), {latest.rows} rows vs {latest.referenceRows} in the reference.
        </p>
        {features.length ? (
          <div class="table-wrap">
            <table class="plain heatmap">
              <thead>
                <tr>
                  <th scope="col">Feature</th>
                  {slices.data.ends.map((e) => (
                    <th scope="col" key={e} class="small">
                      {new Date(e).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {features.map((f) => (
                  <tr key={f}>
                    <th scope="row">
                      <button type="button" class="link" aria-pressed={chosen === f} onClick={() => setChosen(f)}>
                        {f}
                      </button>
                    </th>
                    {slices.data!.ends.map((e, i) => {
                      const c = cell(i, f);
                      const ratio = c?.score !== null && c?.score !== undefined ? c.score / c.threshold : null;
                      return (
                        <td key={e} class="heat" style={{ background: heat(ratio) }} title={c ? `${c.method} ${num(c.score, 3)} (threshold ${c.threshold}) — ${c.verdict}` : 'no data'}>
                          <span class="small">{ratio === null ? '·' : num(c!.score, 2)}</span>
                        </td>
                      );
                    })}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : (
          <Info>No statistics from devices running {model} in this span yet. Devices send feature sketches once they serve requests on a bundle with a reference profile.</Info>
        )}
      </section>
      {shown && (
        <section class="card" aria-labelledby="hist-h">
          <h2 id="hist-h">
            Reference vs live — {shown.feature} <span class="muted small">(latest window; pick a feature in the heatmap)</span>
          </h2>
          <Histogram
            key={shown.feature}
            data={{
              feature: shown.feature,
              bins: shown.kind === 'numeric' ? binLabels(shown.edges) : shown.categories,
              reference: shown.reference,
              live: shown.live,
              overlay: shown.kind === 'numeric',
            }}
          />
        </section>
      )}
      <section class="card" aria-labelledby="latest-h">
        <h2 id="latest-h">Latest window per feature{chosen ? ` — ${chosen}` : ''}</h2>
        <div class="table-wrap">
          <table class="plain">
            <thead>
              <tr>
                <th scope="col">Feature</th>
                <th scope="col">Kind</th>
                <th scope="col">Method</th>
                <th scope="col">Score</th>
                <th scope="col">Threshold</th>
                <th scope="col">p-value</th>
                <th scope="col">Rows (live / reference)</th>
                <th scope="col">Verdict</th>
              </tr>
            </thead>
            <tbody>
              {[...latest.features, ...latest.outputs]
                .filter((f) => !chosen || f.feature === chosen)
                .map((f) => (
                  <tr key={f.feature}>
                    <td>{f.feature}</td>
                    <td>{f.kind}</td>
                    <td>{f.method}</td>
                    <td>{num(f.score, 4)}</td>
                    <td>{f.threshold}</td>
                    <td>{f.pValue === undefined ? '—' : num(f.pValue, 4)}</td>
                    <td>
                      {f.n} / {f.referenceN}
                    </td>
                    <td>
                      <Verdict verdict={f.verdict} />
                    </td>
                  </tr>
                ))}
            </tbody>
          </table>
        </div>
      </section>
    </div>
  );
}

function Verdict({ verdict }: { verdict: string }) {
  return <Status state={verdict === 'drifted' ? 'failed' : verdict === 'not_drifted' ? 'active' : 'idle'} text={verdict.replace('_', ' ')} />;
}

/** White (no drift) → amber → red at the threshold and beyond. */
function heat(ratio: number | null): string {
  if (ratio === null) return '#f3f4f6';
  const r = Math.min(1, Math.max(0, ratio));
  if (ratio >= 1) return '#fca5a5';
  return `hsl(${50 - r * 40}, 95%, ${97 - r * 30}%)`;
}

function Alerts() {
  const alerts = useLoad(async () => {
    const [a, d] = await Promise.all([call(api.api.v1.alerts.$get({ query: { limit: '50' } })), call(api.api.v1.alerts.deliveries.$get({ query: { limit: '50' } })).catch(() => null)]);
    return { alerts: a.alerts, deliveries: d?.deliveries ?? null };
  });
  useEventReload(['alert'], alerts.reload);
  // A delivery's retries raise no event: while one is still on its way, poll so its outcome shows.
  const inFlight = alerts.data?.deliveries?.some((d) => d.status === 'pending') ?? false;
  useInterval(() => void alerts.reload(), inFlight ? 1_000 : null);
  if (!alerts.data) return alerts.error ? <ErrorBox error={alerts.error} title="Could not load alerts" /> : <Loading what="alerts" />;
  const { alerts: list, deliveries } = alerts.data;
  return (
    <section class="card" aria-labelledby="alerts-h">
      <h2 id="alerts-h">Alerts</h2>
      {list.length ? (
        <div class="table-wrap">
          <table class="plain" aria-label="Drift alerts">
            <thead>
              <tr>
                <th scope="col">Status</th>
                <th scope="col">Model</th>
                <th scope="col">Cohort</th>
                <th scope="col">Worst feature</th>
                <th scope="col">Opened</th>
                <th scope="col">Webhook deliveries</th>
              </tr>
            </thead>
            <tbody>
              {list.map((a) => {
                const mine = deliveries?.filter((d) => d.alertId === a.id) ?? [];
                return (
                  <tr key={a.id} data-alert={a.id}>
                    <td>
                      <Status state={a.status} />
                    </td>
                    <td class="mono small">{a.model}</td>
                    <td>{a.cohort}</td>
                    <td>
                      {a.feature} {num(a.score, 3)} / {a.threshold}
                    </td>
                    <td class="small">{when(a.openedAt)}</td>
                    <td class="small">
                      {deliveries === null
                        ? 'your role cannot read deliveries'
                        : mine.length
                          ? mine.map((d) => `${d.event}: ${d.status}${d.attempts > 1 ? ` after ${d.attempts} attempts` : ''}${d.lastError ? ` (${d.lastError})` : ''}`).join('; ')
                          : 'none'}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      ) : (
        <p class="muted">No drift alerts. An alert opens when a cohort's live data drifts from the version's reference past the thresholds.</p>
      )}
    </section>
  );
}
