// "Start a rollout": what `flotilla rollouts start --help` offers and POST /api/v1/rollouts accepts —
// bundle, cohort (with member count), stages, bake time, the health gates (failed updates, update
// success ratio, error rate, latency ratio, drift, stage timeout) and an optional shadow stage (share
// of requests, duration, report window) with its gates (agreement, latency ratio, mean |diff|).
// An empty field leaves the server's default (README "Rollouts"), as an omitted CLI flag does.
import { useState } from 'preact/hooks';
import { api, call, readable } from '../api.ts';
import { ErrorBox } from '../ui/notice.tsx';
import { useLoad } from '../ui/use-load.ts';

const EMPTY = {
  bundle: '',
  cohort: '',
  stages: '0.1, 0.5, 1',
  bakeS: '300',
  onFailure: 'pause',
  maxFailedUpdates: '0',
  minUpdateSuccessRatio: '',
  maxErrorRate: '',
  maxLatencyRatio: '',
  stageTimeoutS: '',
  drift: true,
  shadow: false,
  shadowPercent: '20',
  shadowDurationS: '1800',
  shadowWindowS: '',
  minAgreement: '',
  maxShadowLatencyRatio: '',
  maxMeanAbsDiff: '',
};
type Form = typeof EMPTY;
type TextField = { [K in keyof Form]: Form[K] extends string ? K : never }[keyof Form];

/** An optional number field: undefined when empty, else the number or a message naming the field. */
function optional(form: Form, key: TextField, label: string, ok: (n: number) => boolean, range: string): number | undefined {
  const t = form[key].trim();
  if (t === '') return undefined;
  const n = Number(t);
  if (!Number.isFinite(n) || !ok(n)) throw new Error(`${label}: "${t}" is not ${range}.`);
  return n;
}

/** The request body the form describes; throws a readable message for a field out of range. */
export function rolloutRequest(form: Form) {
  const stages = form.stages.split(',').map((s) => Number(s.trim()));
  if (stages.some((s) => !(s > 0 && s <= 1))) throw new Error('Stages are fractions of the cohort between 0 and 1, e.g. "0.1, 0.5, 1".');
  const ratio = (n: number) => n >= 0 && n <= 1;
  const seconds = (n: number) => Number.isInteger(n) && n >= 1;
  const gates = {
    maxFailedUpdates: optional(form, 'maxFailedUpdates', 'Max failed updates', (n) => Number.isInteger(n) && n >= 0, 'a whole number ≥ 0'),
    minUpdateSuccessRatio: optional(form, 'minUpdateSuccessRatio', 'Min update success ratio', ratio, 'between 0 and 1'),
    maxErrorRate: optional(form, 'maxErrorRate', 'Max error rate', ratio, 'between 0 and 1'),
    maxLatencyRatio: optional(form, 'maxLatencyRatio', 'Max latency ratio', (n) => n >= 1 && n <= 100, 'between 1 and 100'),
    stageTimeoutS: optional(form, 'stageTimeoutS', 'Stage timeout', seconds, 'a whole number of seconds ≥ 1'),
    ...(form.drift ? {} : { drift: false }),
    ...(form.shadow
      ? {
          minAgreement: optional(form, 'minAgreement', 'Min agreement', ratio, 'between 0 and 1'),
          maxShadowLatencyRatio: optional(form, 'maxShadowLatencyRatio', 'Max shadow latency ratio', (n) => n > 0 && n <= 100, 'above 0 and at most 100'),
          maxMeanAbsDiff: optional(form, 'maxMeanAbsDiff', 'Max mean |difference|', (n) => n >= 0, 'a number ≥ 0'),
        }
      : {}),
    onFailure: form.onFailure as 'pause' | 'rollback',
  };
  const share = form.shadow ? optional(form, 'shadowPercent', 'Shadow share', (n) => n > 0 && n <= 100, 'a percentage above 0 and at most 100') : undefined;
  if (form.shadow && share === undefined) throw new Error('Shadow share: say what share of requests the candidate also answers, e.g. 20 (%).');
  return {
    bundle: form.bundle,
    cohort: form.cohort,
    stages,
    bakeS: optional(form, 'bakeS', 'Bake time', (n) => Number.isInteger(n) && n >= 0, 'a whole number of seconds ≥ 0'),
    // JSON drops the undefined keys: the server applies its defaults to them.
    gates: Object.fromEntries(Object.entries(gates).filter(([, v]) => v !== undefined)) as typeof gates,
    ...(share !== undefined
      ? { shadow: { share: share / 100, durationS: optional(form, 'shadowDurationS', 'Shadow duration', seconds, 'a whole number of seconds ≥ 1'), windowS: optional(form, 'shadowWindowS', 'Shadow report window', (n) => seconds(n) && n <= 3600, 'between 1 and 3600 s') } }
      : {}),
  };
}

export function StartRollout({ cohorts, onStarted }: { cohorts: Array<{ name: string; members: number }>; onStarted(): Promise<void> }) {
  const bundles = useLoad(() => call(api.api.v1.bundles.$get({ query: { limit: '200' } })));
  const [form, setForm] = useState(EMPTY);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const set = (k: TextField) => (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value });
  const flag = (k: 'drift' | 'shadow') => (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).checked });
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    let json: ReturnType<typeof rolloutRequest>;
    try {
      json = rolloutRequest(form);
    } catch (err) {
      return setError((err as Error).message);
    }
    setBusy(true);
    try {
      await call(api.api.v1.rollouts.$post({ json }));
      await onStarted();
    } catch (err) {
      setError(readable(err));
    } finally {
      setBusy(false);
    }
  };
  const num = (key: TextField, label: string, o: { min?: number; max?: number; step?: string; placeholder?: string } = {}) => (
    <label>
      {label}
      <input type="number" min={o.min} max={o.max} step={o.step ?? 'any'} value={form[key]} placeholder={o.placeholder ?? 'default'} onInput={set(key)} />
    </label>
  );
  return (
    <form class="card page" onSubmit={submit} aria-labelledby="start-h">
      <h2 id="start-h">Start a rollout</h2>
      <div class="row">
        <label class="grow">
          Bundle
          <select value={form.bundle} required onChange={set('bundle')}>
            <option value="">Choose a bundle…</option>
            {(bundles.data?.bundles ?? []).map((b) => (
              <option key={b.id} value={b.id}>
                {b.modelName}@{b.modelVersion} — {b.name} ({b.id.slice(0, 12)})
              </option>
            ))}
          </select>
        </label>
        <label class="grow">
          Cohort
          <select value={form.cohort} required onChange={set('cohort')}>
            <option value="">Choose a cohort…</option>
            {cohorts.map((c) => (
              <option key={c.name} value={c.name}>
                {c.name} ({c.members} devices)
              </option>
            ))}
          </select>
        </label>
      </div>
      <div class="row">
        <label>
          Stages (fractions)
          <input value={form.stages} onInput={set('stages')} class="mono" />
        </label>
        {num('bakeS', 'Bake time (s)', { min: 0, step: '1', placeholder: '300' })}
        <label>
          When a gate fails
          <select value={form.onFailure} onChange={set('onFailure')}>
            <option value="pause">pause</option>
            <option value="rollback">roll back</option>
          </select>
        </label>
      </div>
      <fieldset class="row">
        <legend>Gates of each stage (empty: the server's default)</legend>
        {num('maxFailedUpdates', 'Max failed updates', { min: 0, step: '1', placeholder: '0' })}
        {num('minUpdateSuccessRatio', 'Min update success ratio (0–1)', { min: 0, max: 1, placeholder: '0.95' })}
        {num('maxErrorRate', 'Max error rate (0–1)', { min: 0, max: 1, placeholder: 'off' })}
        {num('maxLatencyRatio', 'Max latency ratio (stage p95 / before)', { min: 1, max: 100, placeholder: 'off' })}
        {num('stageTimeoutS', 'Stage timeout (s)', { min: 1, step: '1', placeholder: 'none' })}
        <label class="row">
          <input type="checkbox" checked={form.drift} onChange={flag('drift')} /> Fail a stage on a drift alert for the new version
        </label>
      </fieldset>
      <fieldset class="row">
        <legend>
          <label class="row">
            <input type="checkbox" checked={form.shadow} onChange={flag('shadow')} /> Shadow stage first (the candidate runs beside the serving bundle and never answers)
          </label>
        </legend>
        {form.shadow && (
          <>
            {num('shadowPercent', 'Shadow share of requests (%)', { min: 1, max: 100, step: '1', placeholder: '20' })}
            {num('shadowDurationS', 'Shadow duration (s)', { min: 1, step: '1', placeholder: '1800' })}
            {num('shadowWindowS', 'Shadow report window (s)', { min: 1, max: 3600, step: '1', placeholder: '60' })}
            {num('minAgreement', 'Min agreement (0–1)', { min: 0, max: 1, placeholder: '0.95' })}
            {num('maxShadowLatencyRatio', 'Max shadow latency ratio', { min: 0, max: 100, placeholder: '1.5' })}
            {num('maxMeanAbsDiff', 'Max mean |difference| (regressors)', { min: 0, placeholder: 'off' })}
          </>
        )}
      </fieldset>
      <ErrorBox error={error ?? bundles.error} title="Rollout not started" />
      <button type="submit" class="primary" disabled={busy}>
        {busy ? 'Starting…' : 'Start rollout'}
      </button>
    </form>
  );
}
