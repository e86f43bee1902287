// An empty fleet shows how to get the first device in: a fresh enrollment token and the exact command.
import { useState } from 'preact/hooks';
import { api, call, readable } from '../api.ts';
import { can } from '../session.ts';
import { ErrorBox } from '../ui/notice.tsx';

export function EnrollFirst() {
  const [labels, setLabels] = useState('site=lab');
  const [token, setToken] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const parsed: Record<string, string> = {};
      for (const part of labels.split(',').map((s) => s.trim()).filter(Boolean)) {
        const [k, v = ''] = part.split('=');
        parsed[k.trim()] = v.trim();
      }
      const t = await call(api.api.v1['enroll-tokens'].$post({ json: { labels: parsed, ttlSeconds: 86400, autoApprove: true } }));
      setToken(t.token);
    } catch (err) {
      setError(readable(err));
    } finally {
      setBusy(false);
    }
  };
  const command = `flotilla-agent --server ${location.origin} --enroll-token ${token ?? '<token>'} --trust-root <root public key> --data-dir ./agent-data`;
  return (
    <section class="card empty" aria-labelledby="enroll-title">
      <h2 id="enroll-title">No devices yet — enroll the first one</h2>
      <ol>
        <li>
          Create an enrollment token. Devices that enroll with it get these labels, so cohorts pick them up.
          {can('devices:write') ? (
            <form class="row" onSubmit={create}>
              <label>
                Labels for new devices
                <input value={labels} onInput={(e) => setLabels((e.target as HTMLInputElement).value)} placeholder="site=lab,hw=rpi4" />
              </label>
              <button type="submit" class="primary" disabled={busy}>
                {busy ? 'Creating…' : 'Create enrollment token'}
              </button>
            </form>
          ) : (
            <p class="muted">Your role cannot create enrollment tokens; ask an operator or admin, or run <code>flotilla enroll-tokens create</code>.</p>
          )}
          <ErrorBox error={error} title="Could not create the token" />
        </li>
        <li>
          On the device, run the agent (<code>node bin/flotilla-agent.js</code> in a checkout). The trust root is the public key
          <code>flotilla keys init</code> printed:
          <pre class="code" aria-label="Agent command">{command}</pre>
          {token && <p class="muted">The token is shown once and is valid for 24 hours.</p>}
        </li>
        <li>The device appears here within seconds; deploy a model to its cohort under Cohorts &amp; deployments.</li>
      </ol>
    </section>
  );
}
