// A model's retraining policy: create or edit it (cron and/or drift trigger, trainer, data, what
// follows), disable / enable it, or remove it — through PUT/DELETE /models/{name}/retrain-policy,
// whose validation messages are shown as they come.
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, call, readable } from '../api.ts';
import { when } from '../format.ts';
import { ErrorBox, Loading } from '../ui/notice.tsx';
import { Status } from '../ui/status.tsx';
import { useLoad } from '../ui/use-load.ts';

interface Form {
  enabled: boolean;
  cron: string;
  driftOpenForS: string;
  trainer: string;
  dataset: string;
  includeSamples: boolean;
  includeLabels: boolean;
  after: string;
  timeoutS: string;
  maxAttempts: string;
}

const EMPTY: Form = {
  enabled: true,
  cron: '',
  driftOpenForS: '',
  trainer: JSON.stringify({ kind: 'builtin', model: 'tabular-demo-mlp', fineTune: true }),
  dataset: '',
  includeSamples: false,
  includeLabels: false,
  after: JSON.stringify({ evaluate: true }),
  timeoutS: '3600',
  maxAttempts: '2',
};

export function PolicyEditor() {
  const models = useLoad(() => call(api.api.v1.models.$get({ query: {} })));
  const [model, setModel] = useState('');
  useEffect(() => {
    if (!model && models.data?.models.length) setModel(models.data.models[0].name);
  }, [models.data, model]);
  if (models.loading && !models.data) return <Loading what="models" />;
  if (!models.data) return <ErrorBox error={models.error} title="Could not load models" />;
  if (!models.data.models.length) return null;
  return (
    <section class="card page" aria-labelledby="policy-h">
      <div class="row">
        <h2 id="policy-h">Retraining policy</h2>
        <label>
          Model
          <select value={model} onChange={(e) => setModel((e.target as HTMLSelectElement).value)}>
            {models.data.models.map((m) => (
              <option key={m.name}>{m.name}</option>
            ))}
          </select>
        </label>
      </div>
      {model && <PolicyForm key={model} model={model} />}
    </section>
  );
}

function PolicyForm({ model }: { model: string }) {
  const policy = useLoad(async () => {
    try {
      return await call(api.api.v1.models[':name']['retrain-policy'].$get({ param: { name: model } }));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return null; // no policy yet
      throw err;
    }
  }, [model]);
  const [form, setForm] = useState<Form>(EMPTY);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    const p = policy.data;
    if (p === undefined) return;
    setForm(
      p === null
        ? EMPTY
        : {
            enabled: p.enabled,
            cron: p.cron ?? '',
            driftOpenForS: p.driftOpenForS === null ? '' : String(p.driftOpenForS),
            trainer: JSON.stringify(p.trainer),
            dataset: p.data.dataset,
            includeSamples: p.data.includeSamples,
            includeLabels: p.data.includeLabels,
            after: JSON.stringify(p.after),
            timeoutS: String(p.timeoutS),
            maxAttempts: String(p.maxAttempts),
          },
    );
  }, [policy.data]);
  if (policy.loading && policy.data === undefined) return <Loading what="the policy" />;
  if (policy.data === undefined) return <ErrorBox error={policy.error} title="Could not load the policy" />;

  const text = (k: keyof Form) => (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value });
  const flag = (k: keyof Form) => (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).checked });
  const json = (what: string, s: string): Record<string, unknown> => {
    try {
      const v = JSON.parse(s) as unknown;
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
      return v as Record<string, unknown>;
    } catch (err) {
      throw new Error(`${what} must be a JSON object (${(err as Error).message})`);
    }
  };
  async function save(enabled = form.enabled) {
    setError(null);
    setDone(null);
    setBusy(true);
    try {
      const trainer = json('Trainer', form.trainer);
      // The server shows a webhook secret as "(set)"; sending that back would replace the real one.
      if (trainer.secret === '(set)') throw new Error('the webhook secret is never shown: type it again (or remove "secret") before saving');
      const body = {
        enabled,
        cron: form.cron.trim() || null,
        driftOpenForS: form.driftOpenForS.trim() === '' ? null : Number(form.driftOpenForS),
        trainer,
        data: { dataset: form.dataset.trim(), includeSamples: form.includeSamples, includeLabels: form.includeLabels },
        after: json('After', form.after),
        timeoutS: Number(form.timeoutS),
        maxAttempts: Number(form.maxAttempts),
      };
      await call(api.api.v1.models[':name']['retrain-policy'].$put({ param: { name: model }, json: body }));
      setDone(enabled === form.enabled ? `Saved the policy of ${model}.` : enabled ? `Enabled the policy of ${model}.` : `Disabled the policy of ${model}.`);
      await policy.reload();
    } catch (err) {
      setError(readable(err));
    } finally {
      setBusy(false);
    }
  }
  async function remove() {
    if (!confirm(`Remove the retraining policy of ${model}? Jobs already started continue.`)) return;
    setError(null);
    try {
      await call(api.api.v1.models[':name']['retrain-policy'].$delete({ param: { name: model } }));
      setDone(`Removed the policy of ${model}.`);
      await policy.reload();
    } catch (err) {
      setError(readable(err));
    }
  }
  const p = policy.data;
  return (
    <form
      class="page"
      aria-label={`Retraining policy of ${model}`}
      onSubmit={(e) => {
        e.preventDefault();
        void save();
      }}
    >
      <p class="small">
        {p ? (
          <>
            <Status state={p.enabled ? 'active' : 'idle'} text={p.enabled ? 'enabled' : 'disabled'} /> updated {when(p.updatedAt)}
            {p.updatedBy ? ` by ${p.updatedBy}` : ''}
          </>
        ) : (
          `${model} has no retraining policy: fill in a trigger, a trainer and a dataset.`
        )}
      </p>
      <div class="form-grid">
        <label>
          Cron schedule (empty: none)
          <input class="mono" value={form.cron} placeholder="0 3 * * *" onInput={text('cron')} />
        </label>
        <label>
          Drift trigger: alert open for (s, empty: none)
          <input type="number" min={0} value={form.driftOpenForS} onInput={text('driftOpenForS')} />
        </label>
        <label>
          Dataset name
          <input value={form.dataset} required onInput={text('dataset')} />
        </label>
        <label class="check">
          <input type="checkbox" checked={form.includeSamples} onChange={flag('includeSamples')} /> Include device samples
        </label>
        <label class="check">
          <input type="checkbox" checked={form.includeLabels} onChange={flag('includeLabels')} /> Include ground-truth labels
        </label>
        <label>
          Timeout (s)
          <input type="number" min={1} value={form.timeoutS} onInput={text('timeoutS')} />
        </label>
        <label>
          Max attempts
          <input type="number" min={1} max={10} value={form.maxAttempts} onInput={text('maxAttempts')} />
        </label>
        <label class="check">
          <input type="checkbox" checked={form.enabled} onChange={flag('enabled')} /> Enabled
        </label>
      </div>
      <label>
        Trainer (JSON: builtin, command or webhook)
        <textarea class="mono small" rows={2} value={form.trainer} onInput={text('trainer')} />
      </label>
      <label>
        After training (JSON: evaluate, optimize, rollout)
        <textarea class="mono small" rows={2} value={form.after} onInput={text('after')} />
      </label>
      <ErrorBox error={error} title="Policy not saved" />
      {done && (
        <p role="status" class="tone-text-ok">
          {done}
        </p>
      )}
      <div class="actions">
        <button type="submit" class="primary" disabled={busy}>
          {p ? 'Save policy' : 'Create policy'}
        </button>
        {p && (
          <button type="button" disabled={busy} onClick={() => void save(!p.enabled)}>
            {p.enabled ? 'Disable policy' : 'Enable policy'}
          </button>
        )}
        {p && (
          <button type="button" class="danger" disabled={busy} onClick={() => void remove()}>
            Remove policy
          </button>
        )}
      </div>
    </form>
  );
}
