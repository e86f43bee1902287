// Playground: a model version or bundle run in the browser with onnxruntime-web (loaded only here), on
// the input the bundle expects — a feature form, an image preprocessed as the bundle says, or raw
// tensors — with the answer shown as the agent's local API gives it, next to the server's answer for
// the same tensors (onnxruntime-node, POST …/run) and the largest absolute difference between them.
// Preprocessing and postprocessing are the agent's own pure modules, not copies.
import { useEffect, useState } from 'preact/hooks';
import { imageTensor } from '../../../agent/runtime/image-tensor.ts';
import { postprocess, type Prediction } from '../../../agent/runtime/postprocess.ts';
import { preprocessTabular } from '../../../agent/runtime/preprocess-tabular.ts';
import type { BundleDefinition, ImagePreprocess, Postprocess, TabularPreprocess } from '../../../firmware-bundles/definition.ts';
import { api, ApiError, call, readable } from '../api.ts';
import { decodeImage } from '../playground/decode-image.ts';
import { createSession, type BrowserSession, type PlainTensor } from '../playground/ort-web.ts';
import { session as auth } from '../session.ts';
import { ErrorBox, Info, Loading } from '../ui/notice.tsx';
import { useLoad } from '../ui/use-load.ts';

interface TensorInfo {
  name: string;
  dtype: string;
  shape: Array<number | string | null>;
}
interface Target {
  key: string;
  model: string;
  version: number;
  sha256: string;
  inputs: TensorInfo[];
  /** Present when a bundle was picked: its preprocessing, postprocessing and inlined labels. */
  definition?: Pick<BundleDefinition, 'preprocess'> & { postprocess: Postprocess & { labels?: string[] } };
  label: string;
}
interface Answer {
  browser: { outputs: Record<string, { dims: number[]; data: number[] }>; predictions?: Prediction[] | Prediction[][]; latencyMs: number };
  server: { outputs: Record<string, { dims: number[]; data: Array<number | string> }>; latencyMs: number } | null;
  serverError: string | null;
  maxAbsDiff: number | null;
}

export function PlaygroundPage() {
  const targets = useLoad(loadTargets);
  const [key, setKey] = useState('');
  useEffect(() => {
    if (!key && targets.data?.length) setKey(targets.data[0].key);
  }, [targets.data, key]);
  if (targets.loading && !targets.data) return <Loading what="models and bundles" />;
  if (!targets.data) return <ErrorBox error={targets.error} title="Could not load models and bundles" />;
  const target = targets.data.find((t) => t.key === key);
  return (
    <div class="page">
      <header class="page-head">
        <h1>Playground</h1>
      </header>
      <p class="muted small">
        Runs the model in this browser with onnxruntime-web (WebAssembly, single thread) and the same input on the control plane with onnxruntime-node, and shows both. A bundle brings its preprocessing (feature form or image) and labels; a bare version takes raw tensors.
      </p>
      {targets.data.length ? (
        <div class="filters">
          <label>
            Model or bundle
            <select value={key} onChange={(e) => setKey((e.target as HTMLSelectElement).value)}>
              <optgroup label="Bundles">
                {targets.data.filter((t) => t.definition).map((t) => (
                  <option key={t.key} value={t.key}>
                    {t.label}
                  </option>
                ))}
              </optgroup>
              <optgroup label="Model versions (raw tensors)">
                {targets.data.filter((t) => !t.definition).map((t) => (
                  <option key={t.key} value={t.key}>
                    {t.label}
                  </option>
                ))}
              </optgroup>
            </select>
          </label>
        </div>
      ) : (
        <Info>No model versions yet: push one with `flotilla models push model.onnx --name my-model`.</Info>
      )}
      {target && <Runner key={target.key} target={target} />}
    </div>
  );
}

async function loadTargets(): Promise<Target[]> {
  const [models, bundles] = await Promise.all([call(api.api.v1.models.$get({ query: {} })), call(api.api.v1.bundles.$get({ query: { limit: '200' } }))]);
  const versions = (await Promise.all(models.models.map((m) => call(api.api.v1.models[':name'].versions.$get({ param: { name: m.name }, query: { limit: '200' } }))))).flatMap((r) => r.versions);
  const byRef = new Map(versions.map((v) => [v.ref, v]));
  const out: Target[] = [];
  for (const b of bundles.bundles) {
    const v = byRef.get(b.model);
    if (!v) continue;
    const definition = b.definition as Target['definition'];
    out.push({ key: `bundle:${b.id}`, model: v.model, version: v.version, sha256: v.sha256, inputs: v.inputs, definition, label: `${b.name} — ${b.model} (${definition?.preprocess.type ?? '?'}, bundle ${b.id.slice(0, 8)})` });
  }
  for (const v of versions) out.push({ key: `version:${v.ref}`, model: v.model, version: v.version, sha256: v.sha256, inputs: v.inputs, label: v.ref });
  return out;
}

function Runner({ target }: { target: Target }) {
  const [sess, setSess] = useState<BrowserSession | null>(null);
  const [status, setStatus] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [answer, setAnswer] = useState<Answer | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => () => void sess?.release(), [sess]);

  async function load() {
    setError(null);
    setStatus('Downloading the model…');
    try {
      // The model's bytes through the API with this session's token (never a URL with a token in it).
      const res = await fetch(`/artifacts/sha256/${target.sha256}`, { headers: { authorization: `Bearer ${auth.token() ?? ''}` } });
      if (!res.ok) throw new ApiError(res.status, 'download', `downloading the model answered ${res.status}`);
      const bytes = new Uint8Array(await res.arrayBuffer());
      setStatus(`Starting onnxruntime-web on ${(bytes.length / 1024).toFixed(1)} KB…`);
      setSess(await createSession(bytes));
      setStatus(`${target.model}@${target.version} loaded in this browser.`);
    } catch (err) {
      setStatus('');
      setError(readable(err));
    }
  }

  async function run(feeds: Record<string, PlainTensor>) {
    if (!sess) return;
    setBusy(true);
    setError(null);
    try {
      const r = await sess.run(feeds);
      const outputs = Object.fromEntries(Object.entries(r.outputs).map(([n, t]) => [n, { dims: t.dims, data: Array.from(t.data as ArrayLike<number | bigint>, Number) }]));
      const post = target.definition?.postprocess;
      const rows = post ? postprocess(r.outputs as Parameters<typeof postprocess>[0], post, post.labels) : undefined;
      const browser = { outputs, ...(rows ? { predictions: rows.length === 1 ? rows[0] : rows } : {}), latencyMs: Number(r.ms.toFixed(3)) };
      let server: Answer['server'] = null;
      let serverError: string | null = null;
      try {
        const inputs = Object.fromEntries(Object.entries(feeds).map(([n, t]) => [n, { dims: t.dims, data: Array.from(t.data as ArrayLike<number | bigint>, Number) }]));
        server = await call(api.api.v1.models[':name'].versions[':version'].run.$post({ param: { name: target.model, version: String(target.version) }, json: { inputs } }));
      } catch (err) {
        serverError = readable(err);
      }
      setAnswer({ browser, server, serverError, maxAbsDiff: server ? maxAbsDiff(outputs, server.outputs) : null });
    } catch (err) {
      setError(readable(err));
    } finally {
      setBusy(false);
    }
  }

  const pre = target.definition?.preprocess;
  return (
    <div class="page">
      <section class="card" aria-labelledby="pg-model-h">
        <h2 id="pg-model-h">{target.label}</h2>
        <p class="mono small">{target.inputs.map((t) => `${t.name}: ${t.dtype}[${t.shape.map((d) => d ?? '?').join(', ')}]`).join('; ')}</p>
        {!sess && (
          <button type="button" onClick={load}>
            Load in the browser
          </button>
        )}
        {status && (
          <p role="status" class="small">
            {status}
          </p>
        )}
        <ErrorBox error={error} title="The playground could not do that" />
      </section>
      {sess && pre?.type === 'tabular' && <FeatureForm spec={pre} busy={busy} onRun={run} onError={setError} />}
      {sess && pre?.type === 'image' && <ImageInput spec={pre} busy={busy} onRun={run} onError={setError} />}
      {sess && (!pre || (pre.type !== 'tabular' && pre.type !== 'image')) && <TensorForm inputs={target.inputs} busy={busy} onRun={run} onError={setError} />}
      {answer && <AnswerView answer={answer} />}
    </div>
  );
}

interface InputProps {
  busy: boolean;
  onRun(feeds: Record<string, PlainTensor>): Promise<void>;
  onError(message: string): void;
}

function FeatureForm({ spec, busy, onRun, onError }: InputProps & { spec: TabularPreprocess }) {
  const [values, setValues] = useState<Record<string, string>>(() => Object.fromEntries(spec.features.map((f) => [f.name, f.categories?.[0] ?? '0'])));
  function submit(e: Event) {
    e.preventDefault();
    try {
      const row = Object.fromEntries(spec.features.map((f) => [f.name, f.dtype === 'categorical' ? values[f.name] : values[f.name].trim() === '' ? null : Number(values[f.name])]));
      // The agent's own tabular preprocessing: feature order, categories and its error messages.
      const t = preprocessTabular(spec, row);
      void onRun({ [t.input]: { type: 'float32', dims: t.dims, data: t.data } });
    } catch (err) {
      onError(readable(err));
    }
  }
  return (
    <form class="card" aria-labelledby="pg-features-h" onSubmit={submit}>
      <h2 id="pg-features-h">Feature row</h2>
      <div class="feature-grid">
        {spec.features.map((f) => (
          <label key={f.name}>
            {f.name} <span class="muted small">({f.dtype})</span>
            {f.dtype === 'categorical' ? (
              <select value={values[f.name]} onChange={(e) => setValues({ ...values, [f.name]: (e.target as HTMLSelectElement).value })}>
                {(f.categories ?? []).map((c) => (
                  <option key={c}>{c}</option>
                ))}
              </select>
            ) : (
              <input type="number" step="any" required value={values[f.name]} onInput={(e) => setValues({ ...values, [f.name]: (e.target as HTMLInputElement).value })} />
            )}
          </label>
        ))}
      </div>
      <button type="submit" disabled={busy}>
        Run
      </button>
    </form>
  );
}

function ImageInput({ spec, busy, onRun, onError }: InputProps & { spec: ImagePreprocess }) {
  const [preview, setPreview] = useState<string | null>(null);
  async function use(file: File | undefined) {
    if (!file) return;
    try {
      setPreview(URL.createObjectURL(file));
      // Decoded and resized by the browser, then the agent's own tensor step (scale, mean, std, layout).
      const t = imageTensor(spec, [await decodeImage(spec, file)]);
      await onRun({ [spec.input]: { type: 'float32', dims: t.dims, data: t.data } });
    } catch (err) {
      onError(`cannot use this image: ${readable(err)}`);
    }
  }
  return (
    <section
      class="card dropzone"
      aria-labelledby="pg-image-h"
      onDragOver={(e) => e.preventDefault()}
      onDrop={(e) => {
        e.preventDefault();
        void use(e.dataTransfer?.files[0]);
      }}
    >
      <h2 id="pg-image-h">Image</h2>
      <p class="muted small">
        Drop an image here or choose one: it is resized to {spec.width}×{spec.height} ({spec.fit}, {spec.channels}, {spec.layout}) and normalised as the bundle says.
      </p>
      <label>
        Image file
        <input type="file" accept="image/*" disabled={busy} onChange={(e) => void use((e.target as HTMLInputElement).files?.[0])} />
      </label>
      {preview && <img src={preview} alt="The image that was run" class="pg-preview" />}
    </section>
  );
}

function TensorForm({ inputs, busy, onRun, onError }: InputProps & { inputs: TensorInfo[] }) {
  const [texts, setTexts] = useState<Record<string, string>>(() =>
    Object.fromEntries(
      inputs.map((t) => {
        const dims = t.shape.map((d) => (typeof d === 'number' ? d : 1));
        return [t.name, JSON.stringify({ dims, data: Array(dims.reduce((a, b) => a * b, 1)).fill(0) })];
      }),
    ),
  );
  function submit(e: Event) {
    e.preventDefault();
    try {
      const feeds: Record<string, PlainTensor> = {};
      for (const t of inputs) {
        const j = JSON.parse(texts[t.name]) as { dims: number[]; data: number[] };
        if (!Array.isArray(j.dims) || !Array.isArray(j.data)) throw new Error(`${t.name}: give { "dims": [...], "data": [...] }`);
        const size = j.dims.reduce((x, y) => x * y, 1);
        if (size !== j.data.length) throw new Error(`${t.name}: dims [${j.dims.join(', ')}] hold ${size} values, data has ${j.data.length}`);
        feeds[t.name] = { type: t.dtype, dims: j.dims, data: typedArray(t.dtype, j.data) };
      }
      void onRun(feeds);
    } catch (err) {
      onError(readable(err));
    }
  }
  return (
    <form class="card" aria-labelledby="pg-tensors-h" onSubmit={submit}>
      <h2 id="pg-tensors-h">Input tensors</h2>
      {inputs.map((t) => (
        <label key={t.name}>
          {t.name} ({t.dtype}) as {'{ "dims": [...], "data": [...] }'}
          <textarea class="mono small" rows={3} value={texts[t.name]} onInput={(e) => setTexts({ ...texts, [t.name]: (e.target as HTMLTextAreaElement).value })} />
        </label>
      ))}
      <button type="submit" disabled={busy}>
        Run
      </button>
    </form>
  );
}

function AnswerView({ answer }: { answer: Answer }) {
  const top = Array.isArray(answer.browser.predictions) ? (answer.browser.predictions.flat() as Prediction[]) : [];
  return (
    <section class="card" aria-labelledby="pg-answer-h">
      <h2 id="pg-answer-h">Answer</h2>
      {top.length > 0 && (
        <ol class="predictions" aria-label="Predictions">
          {top.map((p) => (
            <li key={`${p.index}-${p.label}`}>
              <b>{p.label}</b> <span class="mono small">{p.score.toFixed(4)}</span>
            </li>
          ))}
        </ol>
      )}
      <p class="small" role="status" aria-label="Browser and server agreement">
        {answer.server
          ? `Largest absolute difference browser vs server: ${answer.maxAbsDiff === null ? 'outputs differ in shape' : answer.maxAbsDiff.toExponential(2)}`
          : `No server answer: ${answer.serverError}`}
      </p>
      <div class="grid2">
        <figure>
          <figcaption class="strong">In this browser (onnxruntime-web, {answer.browser.latencyMs} ms), as the agent's local API answers</figcaption>
          <pre class="mono small answer" aria-label="Browser answer (JSON)">
            {JSON.stringify({ outputs: answer.browser.outputs, predictions: answer.browser.predictions }, null, 1)}
          </pre>
        </figure>
        <figure>
          <figcaption class="strong">On the control plane (onnxruntime-node{answer.server ? `, ${answer.server.latencyMs.toFixed(3)} ms` : ''})</figcaption>
          <pre class="mono small answer" aria-label="Server answer (JSON)">
            {answer.server ? JSON.stringify({ outputs: answer.server.outputs }, null, 1) : answer.serverError}
          </pre>
        </figure>
      </div>
    </section>
  );
}

/** The largest |browser − server| over every output element; null when the outputs do not line up. */
function maxAbsDiff(a: Answer['browser']['outputs'], b: NonNullable<Answer['server']>['outputs']): number | null {
  let max = 0;
  for (const [name, t] of Object.entries(a)) {
    const o = b[name];
    if (!o || o.data.length !== t.data.length) return null;
    for (let i = 0; i < t.data.length; i++) max = Math.max(max, Math.abs(t.data[i] - Number(o.data[i])));
  }
  return max;
}

function typedArray(dtype: string, data: number[]): PlainTensor['data'] {
  switch (dtype) {
    case 'float32':
      return Float32Array.from(data);
    case 'float64':
      return Float64Array.from(data);
    case 'int32':
      return Int32Array.from(data);
    case 'int64':
      return BigInt64Array.from(data.map((x) => BigInt(Math.trunc(x))));
    case 'uint8':
      return Uint8Array.from(data);
    case 'int8':
      return Int8Array.from(data);
    default:
      throw new Error(`the playground does not build ${dtype} tensors`);
  }
}
