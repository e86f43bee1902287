// Optimize a version from the console with the CLI's options (`flotilla optimize --help`): int8 with
// per-channel scales and the integer (MatMulInteger) or weight-only QDQ form, magnitude or structured
// pruning with an optional calibration set, and an optional evaluation set. The request answers when
// the variant is registered and evaluated, so the report is shown right under the form.
import { useState } from 'preact/hooks';
import { api, call, readable } from '../api.ts';
import { summaryRows, type OptimizeOutcome } from './optimize-summary.ts';

export function OptimizeForm({ model, version, onDone }: { model: string; version: number; onDone(): Promise<void> }) {
  const [f, setF] = useState({ dataset: '', quantize: true, perChannel: false, integer: false, sparsity: '', structured: false, calibration: '' });
  const [outcome, setOutcome] = useState<OptimizeOutcome | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const text = (k: 'dataset' | 'sparsity' | 'calibration') => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const flag = (k: 'quantize' | 'perChannel' | 'integer' | 'structured') => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).checked });
  const prune = f.sparsity !== '';
  const run = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setOutcome(null);
    try {
      const out = await call(
        api.api.v1.models[':name'].versions[':ref'].optimize.$post({
          param: { name: model, ref: String(version) },
          json: {
            ...(f.dataset ? { dataset: f.dataset } : {}),
            ...(f.quantize ? { quantize: { form: f.integer ? 'integer' : 'qdq', perChannel: f.perChannel } } : {}),
            ...(prune ? { prune: { sparsity: Number(f.sparsity), structured: f.structured, ...(f.calibration ? { calibration: f.calibration } : {}) } } : {}),
          },
        }),
      );
      setOutcome(out as unknown as OptimizeOutcome);
      await onDone();
    } catch (err) {
      setError(readable(err));
    } finally {
      setBusy(false);
    }
  };
  const v = outcome?.version;
  const rows = outcome ? summaryRows(outcome.report) : [];
  return (
    <details>
      <summary class="strong">Optimize (int8 / prune)</summary>
      <form class="page" onSubmit={run} aria-label="Optimize">
        <fieldset class="row">
          <legend>Quantize</legend>
          <label class="row">
            <input type="checkbox" checked={f.quantize} onChange={flag('quantize')} /> Quantize to int8
          </label>
          <label class="row">
            <input type="checkbox" checked={f.perChannel} disabled={!f.quantize} onChange={flag('perChannel')} /> Per channel (one scale per output channel)
          </label>
          <label class="row">
            <input type="checkbox" checked={f.integer} disabled={!f.quantize} onChange={flag('integer')} /> Integer compute (MatMulInteger) instead of weight-only QDQ
          </label>
        </fieldset>
        <fieldset class="row">
          <legend>Prune</legend>
          <label>
            Sparsity (0–1, empty: no pruning)
            <input type="number" min={0.01} max={0.99} step="0.05" value={f.sparsity} onInput={text('sparsity')} />
          </label>
          <label class="row">
            <input type="checkbox" checked={f.structured} disabled={!prune} onChange={flag('structured')} /> Structured (whole output channels)
          </label>
          <label>
            Calibration dataset (name@N, optional)
            <input value={f.calibration} disabled={!prune} onInput={text('calibration')} />
          </label>
        </fieldset>
        <label>
          Evaluation dataset (name@N; empty: compare with the parent on generated inputs)
          <input value={f.dataset} onInput={text('dataset')} />
        </label>
        <button type="submit" disabled={busy || (!f.quantize && !prune)}>
          {busy ? 'Optimizing and evaluating…' : 'Optimize'}
        </button>
      </form>
      {busy && <progress aria-label="Optimizing" />}
      {error && (
        <div class="notice notice-error" role="alert">
          {error}
        </div>
      )}
      {v && (
        <section aria-label="Optimize report" data-variant={v.ref}>
          <div class={`notice ${v.status === 'ready' ? 'notice-ok' : 'notice-error'}`} role="status">
            Registered {v.ref} ({v.variant}): {v.status === 'ready' ? 'ready' : `rejected — ${v.statusReason ?? v.status}`}.
          </div>
          {rows.length > 0 && (
            <div class="table-wrap">
              <table class="plain small" aria-label={`Optimize report of ${v.ref}`}>
                <caption class="muted small">
                  {outcome.report.dataset ? `On ${outcome.report.dataset}` : 'On generated inputs'}
                  {outcome.report.samples !== undefined ? `, ${outcome.report.samples} samples` : ''}, against {outcome.report.baseline?.ref ?? 'the parent'}
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Measure</th>
                    <th scope="col">{outcome.report.baseline?.ref ?? 'parent'}</th>
                    <th scope="col">{v.ref}</th>
                    <th scope="col">Change</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map(([what, parent, variant, change]) => (
                    <tr key={what} data-measure={what}>
                      <th scope="row">{what}</th>
                      <td class="mono">{parent}</td>
                      <td class="mono">{variant}</td>
                      <td>{change}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </section>
      )}
    </details>
  );
}
