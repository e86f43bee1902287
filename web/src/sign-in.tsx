// Sign in with an API token. It is checked against /api/v1/me and kept in sessionStorage only.
import { useState } from 'preact/hooks';
import { api, ApiError, call } from './api.ts';
import { session, signInMessage } from './session.ts';
import { ErrorBox } from './ui/notice.tsx';
import { Logo } from './ui/logo.tsx';

export async function restoreSession(): Promise<void> {
  const token = session.token();
  if (!token) return;
  try {
    session.set(token, await call(api.api.v1.me.$get()));
  } catch (err) {
    session.signOut(err instanceof ApiError && err.status === 401 ? 'Your saved session expired; sign in again.' : null);
  }
}

export function SignIn() {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const t = token.trim();
    // Checked with this token explicitly: the session keeps it only once it works.
    try {
      const res = await fetch('/api/v1/me', { headers: { authorization: `Bearer ${t}` } });
      const body = (await res.json().catch(() => null)) as { error?: { message: string } } | null;
      if (!res.ok) throw new Error(res.status === 401 ? `${body?.error?.message ?? 'token not recognised'}.` : `The server answered ${res.status}: ${body?.error?.message ?? ''}`);
      session.set(t, body as never);
    } catch (err) {
      setError(err instanceof TypeError ? 'Cannot reach the control plane. Check that it is running.' : (err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <form class="card" onSubmit={submit} aria-labelledby="signin-title">
        <div class="brand big" aria-hidden="true">
          <Logo /> Flotilla
        </div>
        <h1 id="signin-title">Sign in to the console</h1>
        <p class="muted">
          Paste an API token. The control plane prints the first admin token at start; create more with <code>flotilla tokens create --role operator</code>. The token
          stays in this tab only.
        </p>
        {signInMessage.value && <div class="notice notice-info">{signInMessage.value}</div>}
        <label>
          API token
          <input type="password" autoComplete="current-password" value={token} required onInput={(e) => setToken((e.target as HTMLInputElement).value)} />
        </label>
        <ErrorBox error={error} title="Sign-in failed" />
        <button type="submit" class="primary" disabled={busy || !token.trim()}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
