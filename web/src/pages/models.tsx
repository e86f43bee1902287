// Models: versions with their lineage (parent → variants → retrained children), status and aliases,
// the evaluation report next to the parent; upload a version with progress, build a bundle, optimize.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, ApiError, call, readable } from '../api.ts';
import { bytes, when } from '../format.ts';
import { can, session } from '../session.ts';
import { LineageGraph } from '../ui/lineage-graph.tsx';
import { OptimizeForm } from './optimize-form.tsx';
import { ErrorBox, Loading } from '../ui/notice.tsx';
import { Status } from '../ui/status.tsx';
import { useLoad } from '../ui/use-load.ts';

type Version = Awaited<ReturnType<typeof versionsOf>>['versions'][number];
const versionsOf = (name: string) => call(api.api.v1.models[':name'].versions.$get({ param: { name }, query: {} }));

export function ModelsPage() {
  const models = useLoad(() => call(api.api.v1.models.$get({ query: {} })));
  const [name, setName] = useState<string | null>(null);
  useEffect(() => {
    if (!name && models.data?.models.length) setName(models.data.models[0].name);
  }, [models.data, name]);
  if (models.loading && !models.data) return <Loading what="models" />;
  if (!models.data) return <ErrorBox error={models.error} title="Could not load models" />;
  return (
    <div class="page">
      <header class="page-head">
        <h1>Models</h1>
        <div class="tabs" role="group" aria-label="Model">
          {models.data.models.map((m) => (
            <button type="button" key={m.name} aria-pressed={m.name === name} onClick={() => setName(m.name)}>
              {m.name} <span class="small">({m.versions})</span>
            </button>
          ))}
        </div>
      </header>
      {!models.data.models.length && <p class="muted">No models yet. Upload the first version below, or `flotilla models push model.onnx --name my-model`.</p>}
      {name && <ModelDetail key={name} name={name} />}
      {can('models:write') && <Upload defaultName={name ?? ''} onUploaded={async (n) => (await models.reload(), setName(n))} />}
    </div>
  );
}

function ModelDetail({ name }: { name: string }) {
  const versions = useLoad(() => versionsOf(name), [name]);
  // Bundles need models:write; without it the graph shows versions only.
  const bundles = useLoad(() => (can('models:write') ? call(api.api.v1.bundles.$get({ query: { limit: '500' } })).then((r) => r.bundles.filter((b) => b.modelName === name)) : Promise.resolve([])), [name]);
  const [selected, setSelected] = useState<number | null>(null);
  const list = versions.data?.versions ?? [];
  const byRef = useMemo(() => new Map(list.map((v) => [v.ref, v])), [list]);
  const children = useMemo(() => {
    const m = new Map<string | null, Version[]>();
    for (const v of list) {
      const parent = v.parent && byRef.has(v.parent) ? v.parent : null;
      m.set(parent, [...(m.get(parent) ?? []), v]);
    }
    for (const arr of m.values()) arr.sort((a, b) => a.version - b.version);
    return m;
  }, [list, byRef]);
  if (versions.loading && !versions.data) return <Loading what="versions" />;
  if (!versions.data) return <ErrorBox error={versions.error} title={`Could not load versions of ${name}`} />;
  const current = list.find((v) => v.version === selected) ?? list[0];
  const tree = (parent: string | null) => (
    <ul>
      {(children.get(parent) ?? []).map((v) => (
        <li key={v.ref}>
          <button type="button" class="link" aria-pressed={v === current} onClick={() => setSelected(v.version)} aria-label={`Version ${v.ref}`}>
            <b>{v.ref}</b>
          </button>{' '}
          {v.variant && <span class="badge tone-busy">{v.variant}</span>}
          <Status state={v.status} title={v.statusReason ?? undefined} />
          {v.aliases.map((a) => (
            <span key={a} class="badge tone-ok">
              @{a}
            </span>
          ))}
          <span class="muted small">
            {bytes(v.size)}
            {typeof v.lineage?.jobId === 'string' ? ` · job ${v.lineage.jobId}` : ''}
          </span>
          {children.has(v.ref) && tree(v.ref)}
        </li>
      ))}
    </ul>
  );
  return (
    <div class="grid2">
      <section class="card lineage" aria-labelledby="lineage-h">
        <h2 id="lineage-h">Versions and lineage</h2>
        <p class="muted small">Each version sits under its parent: optimized variants (int8, pruned) and retrained children.</p>
        {list.length > 0 && (
          <LineageGraph
            versions={list.map((v) => ({ ref: v.ref, parent: v.parent, variant: v.variant, status: v.status, jobId: typeof v.lineage?.jobId === 'string' ? v.lineage.jobId : undefined }))}
            bundles={bundles.data ?? []}
            selected={current?.ref}
            onSelect={(ref) => setSelected(byRef.get(ref)?.version ?? null)}
          />
        )}
        {tree(null)}
      </section>
      {current && <VersionDetail version={current} parent={current.parent ? byRef.get(current.parent) : undefined} onChanged={versions.reload} />}
    </div>
  );
}

function VersionDetail({ version: v, parent, onChanged }: { version: Version; parent?: Version; onChanged(): Promise<void> }) {
  const metricKeys = [...new Set([...Object.keys(v.metrics), ...Object.keys(parent?.metrics ?? {})])];
  const evaluation = v.evaluation as Record<string, unknown> | null;
  return (
    <section class="card page" aria-labelledby="version-h">
      <h2 id="version-h">
        {v.ref} <Status state={v.status} />
      </h2>
      {v.status === 'rejected' && (
        <div class="notice notice-error">
          <strong>Rejected</strong>
          {v.statusReason}
          {v.override && <span>Overridden by {v.override.by}: {v.override.reason}</span>}
        </div>
      )}
      <dl class="facts">
        <dt>Size</dt>
        <dd>
          {bytes(v.size)} ({v.paramCount.toLocaleString()} parameters)
        </dd>
        <dt>Inputs</dt>
        <dd class="mono small">{v.inputs.map((t) => `${t.name}: ${t.dtype}[${t.shape.join(', ')}]`).join('; ')}</dd>
        <dt>Outputs</dt>
        <dd class="mono small">{v.outputs.map((t) => `${t.name}: ${t.dtype}[${t.shape.join(', ')}]`).join('; ')}</dd>
        <dt>Parent</dt>
        <dd>{v.parent ?? '—'}</dd>
        <dt>Created</dt>
        <dd>
          {when(v.createdAt)} by {v.createdBy ?? 'unknown'}
        </dd>
        <dt>sha256</dt>
        <dd class="mono small">{v.sha256}</dd>
      </dl>
      {metricKeys.length > 0 && (
        <div class="table-wrap">
          <table class="plain">
            <caption class="small muted">Metrics against the parent</caption>
            <thead>
              <tr>
                <th scope="col">Metric</th>
                <th scope="col">{v.ref}</th>
                <th scope="col">{parent?.ref ?? 'parent'}</th>
              </tr>
            </thead>
            <tbody>
              {metricKeys.map((k) => (
                <tr key={k}>
                  <td>{k}</td>
                  <td>{v.metrics[k]?.toFixed(4) ?? '—'}</td>
                  <td>{parent?.metrics[k]?.toFixed(4) ?? '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {evaluation && <EvaluationReport report={evaluation} parentRef={parent?.ref ?? 'parent'} />}
      {can('models:write') && <BuildBundle version={v} />}
      {can('models:write') && <OptimizeForm model={v.model} version={v.version} onDone={onChanged} />}
    </section>
  );
}

/** The stored analysis report (server/optimize/analysis.ts `AnalysisReport`), as far as this page shows it. */
interface ReportMetrics {
  accuracy?: number;
  f1Macro?: number;
  rmse?: number;
  sizeBytes?: number;
  gzipBytes?: number;
  loadMs?: number;
  latency?: { p50Ms: number; p95Ms: number };
  memory?: { peakBytes?: number };
}
interface Report {
  samples?: number;
  metrics?: ReportMetrics;
  baselineMetrics?: ReportMetrics;
  comparison?: { agreement?: number; accuracyDrop?: number; maxAbsOutputDiff?: number; sizeRatio?: number };
  verdict?: { accepted: boolean; reasons: string[] };
  governance?: {
    slices?: Array<{ attribute: string; accuracyGapValue: number; demographicParityDifference: number; equalOpportunityDifference: number }>;
    importance?: { metric: string; features: Array<{ feature: string; mean: number; std: number }> };
  };
  notes?: string[];
}

const METRIC_ROWS: Array<[string, (m: ReportMetrics) => number | undefined, (x: number) => string]> = [
  ['accuracy', (m) => m.accuracy, (x) => x.toFixed(4)],
  ['macro F1', (m) => m.f1Macro, (x) => x.toFixed(4)],
  ['RMSE', (m) => m.rmse, (x) => x.toFixed(4)],
  ['size', (m) => m.sizeBytes, (x) => bytes(x)],
  ['gzip size', (m) => m.gzipBytes, (x) => bytes(x)],
  ['latency p50', (m) => m.latency?.p50Ms, (x) => `${x.toFixed(3)} ms`],
  ['latency p95', (m) => m.latency?.p95Ms, (x) => `${x.toFixed(3)} ms`],
  ['load time', (m) => m.loadMs, (x) => `${x.toFixed(1)} ms`],
];

function EvaluationReport({ report: raw, parentRef }: { report: Record<string, unknown>; parentRef: string }) {
  const report = raw as Report;
  const m = report.metrics ?? {};
  const base = report.baselineMetrics;
  const rows = METRIC_ROWS.filter(([, get]) => get(m) !== undefined || (base && get(base) !== undefined));
  const bars = (report.governance?.importance?.features ?? []).map((f) => [f.feature, f.mean] as const);
  const max = Math.max(1e-9, ...bars.map(([, d]) => Math.abs(d)));
  const c = report.comparison;
  return (
    <details open>
      <summary class="strong">
        Evaluation report{report.samples !== undefined ? ` (${report.samples} samples)` : ''}: {report.verdict ? (report.verdict.accepted ? 'accepted' : `rejected: ${report.verdict.reasons.join('; ')}`) : ''}
      </summary>
      {rows.length > 0 && (
        <div class="table-wrap">
          <table class="plain" aria-label="Evaluation against the baseline">
            <thead>
              <tr>
                <th scope="col">Metric</th>
                <th scope="col">this version</th>
                <th scope="col">{base ? parentRef : 'baseline'}</th>
              </tr>
            </thead>
            <tbody>
              {rows.map(([name, get, fmt]) => {
                const a = get(m);
                const b = base ? get(base) : undefined;
                return (
                  <tr key={name}>
                    <td>{name}</td>
                    <td>{a === undefined ? '—' : fmt(a)}</td>
                    <td>{b === undefined ? '—' : fmt(b)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {c && (
        <dl class="facts small">
          {c.agreement !== undefined && [<dt key="ak">agreement</dt>, <dd key="av">{c.agreement.toFixed(4)}</dd>]}
          {c.accuracyDrop !== undefined && [<dt key="dk">accuracy drop</dt>, <dd key="dv">{c.accuracyDrop.toFixed(4)}</dd>]}
          {c.sizeRatio !== undefined && [<dt key="sk">size ratio</dt>, <dd key="sv">{c.sizeRatio.toFixed(2)}× smaller</dd>]}
          {c.maxAbsOutputDiff !== undefined && [<dt key="mk">max |output diff|</dt>, <dd key="mv">{c.maxAbsOutputDiff.toExponential(2)}</dd>]}
        </dl>
      )}
      {(report.governance?.slices ?? []).length > 0 && (
        <div class="table-wrap">
          <table class="plain" aria-label="Fairness gaps">
            <thead>
              <tr>
                <th scope="col">Group attribute</th>
                <th scope="col">accuracy gap</th>
                <th scope="col">demographic parity</th>
                <th scope="col">equal opportunity</th>
              </tr>
            </thead>
            <tbody>
              {report.governance!.slices!.map((s) => (
                <tr key={s.attribute}>
                  <td>{s.attribute}</td>
                  <td>{s.accuracyGapValue.toFixed(4)}</td>
                  <td>{s.demographicParityDifference.toFixed(4)}</td>
                  <td>{s.equalOpportunityDifference.toFixed(4)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {bars.length > 0 && (
        <figure aria-label="Permutation importance">
          <figcaption class="small muted">Permutation importance ({report.governance!.importance!.metric} lost when a feature is shuffled)</figcaption>
          {bars.map(([f, d]) => (
            <div class="row small" key={f} data-feature={f}>
              <span style={{ width: '6rem' }}>{f}</span>
              <span style={{ background: '#1d4ed8', height: '0.7rem', width: `${(Math.abs(d) / max) * 60}%` }} />
              <span class="mono">{d.toFixed(4)}</span>
            </div>
          ))}
        </figure>
      )}
      {(report.notes ?? []).length > 0 && <p class="small muted">{report.notes!.join(' · ')}</p>}
    </details>
  );
}

function BuildBundle({ version: v }: { version: Version }) {
  const [def, setDef] = useState('');
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const build = async (e: Event) => {
    e.preventDefault();
    setResult(null);
    let definition: Record<string, unknown>;
    try {
      definition = JSON.parse(def) as Record<string, unknown>;
    } catch (err) {
      return setResult({ ok: false, text: `The definition is not JSON: ${(err as Error).message}` });
    }
    setBusy(true);
    try {
      const b = await call(api.api.v1.bundles.$post({ json: { model: v.ref, definition } }));
      setResult({ ok: true, text: `Built bundle ${b.name} (${b.id}); deploy it under Cohorts & deployments.` });
    } catch (err) {
      setResult({ ok: false, text: readable(err) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <details>
      <summary class="strong">Build a bundle from a definition</summary>
      <form class="page" onSubmit={build}>
        <label>
          Bundle definition (bundle.json; labels inline as an array)
          <textarea rows={8} class="mono" value={def} required onInput={(e) => setDef((e.target as HTMLTextAreaElement).value)} placeholder='{"name": "my-bundle", "preprocess": {...}, "postprocess": {...}}' />
        </label>
        <button type="submit" disabled={busy}>
          {busy ? 'Building… (smoke vectors are computed on the server)' : `Build bundle for ${v.ref}`}
        </button>
        {result && <div class={`notice ${result.ok ? 'notice-ok' : 'notice-error'}`} role={result.ok ? 'status' : 'alert'}>{result.text}</div>}
      </form>
    </details>
  );
}

function Upload({ defaultName, onUploaded }: { defaultName: string; onUploaded(name: string): Promise<void> }) {
  const [name, setName] = useState(defaultName);
  const [parent, setParent] = useState('');
  const [file, setFile] = useState<File | null>(null);
  const [progress, setProgress] = useState<number | null>(null);
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  useEffect(() => setName(defaultName), [defaultName]);
  const submit = (e: Event) => {
    e.preventDefault();
    if (!file) return;
    setResult(null);
    setProgress(0);
    // XMLHttpRequest, not fetch: only it reports upload progress. The route is the typed client's.
    const url = api.api.v1.models[':name'].versions.$url({ param: { name }, query: parent ? { parent } : {} });
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url.pathname + url.search);
    xhr.setRequestHeader('authorization', `Bearer ${session.token() ?? ''}`);
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    xhr.upload.onprogress = (ev) => ev.lengthComputable && setProgress(ev.loaded / ev.total);
    xhr.onerror = () => (setProgress(null), setResult({ ok: false, text: 'Upload failed: the connection was lost.' }));
    xhr.onload = () => {
      setProgress(null);
      let body: { ref?: string; error?: { code: string; message: string } } = {};
      try {
        body = JSON.parse(xhr.responseText) as typeof body;
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        setResult({ ok: true, text: `Uploaded ${body.ref ?? name}.` });
        void onUploaded(name);
      } else setResult({ ok: false, text: new ApiError(xhr.status, body.error?.code ?? 'http_error', body.error?.message ?? `the server answered ${xhr.status}`).readable });
    };
    xhr.send(file);
  };
  return (
    <form class="card row" onSubmit={submit} aria-labelledby="upload-h">
      <h2 id="upload-h" style={{ flexBasis: '100%' }}>
        Upload a version
      </h2>
      <label>
        Model name
        <input value={name} required onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      </label>
      <label>
        Parent (optional, name@N)
        <input value={parent} onInput={(e) => setParent((e.target as HTMLInputElement).value)} />
      </label>
      <label>
        ONNX file
        <input type="file" accept=".onnx" required onChange={(e) => setFile((e.target as HTMLInputElement).files?.[0] ?? null)} />
      </label>
      <button type="submit" class="primary" disabled={!file || progress !== null}>
        Upload
      </button>
      {progress !== null && (
        <progress value={progress} max={1} aria-label="Upload progress">
          {Math.round(progress * 100)} %
        </progress>
      )}
      {result && <div class={`notice ${result.ok ? 'notice-ok' : 'notice-error'}`} role={result.ok ? 'status' : 'alert'} style={{ flexBasis: '100%' }}>{result.text}</div>}
    </form>
  );
}
