// API tokens (admins): list, create with a role (the secret is shown once), revoke.
import { useState } from 'preact/hooks';
import { api, call, readable } from '../api.ts';
import { ago, when } from '../format.ts';
import { ErrorBox, Loading } from '../ui/notice.tsx';
import { Status } from '../ui/status.tsx';
import { useLoad } from '../ui/use-load.ts';

const ROLES = ['viewer', 'operator', 'ml-engineer', 'admin'] as const;

export function TokensPage() {
  const tokens = useLoad(() => call(api.api.v1.tokens.$get({ query: {} })));
  const [name, setName] = useState('');
  const [role, setRole] = useState<(typeof ROLES)[number]>('operator');
  const [created, setCreated] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const create = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const t = await call(api.api.v1.tokens.$post({ json: { name, role } }));
      setCreated(t.token);
      setName('');
      await tokens.reload();
    } catch (err) {
      setError(readable(err));
    }
  };
  const revoke = async (id: string) => {
    if (!confirm('Revoke this token? Everything using it stops working at once.')) return;
    try {
      await call(api.api.v1.tokens[':id'].$delete({ param: { id } }));
      await tokens.reload();
    } catch (err) {
      setError(readable(err));
    }
  };
  return (
    <div class="page">
      <header class="page-head">
        <h1>API tokens</h1>
      </header>
      <form class="card row" onSubmit={create} aria-label="Create a token">
        <label>
          Name
          <input value={name} required onInput={(e) => setName((e.target as HTMLInputElement).value)} placeholder="ci-pipeline" />
        </label>
        <label>
          Role
          <select value={role} onChange={(e) => setRole((e.target as HTMLSelectElement).value as typeof role)}>
            {ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </label>
        <button type="submit" class="primary">
          Create token
        </button>
      </form>
      {created && (
        <div class="notice notice-ok" role="status">
          <strong>Token created — copy it now, it is not shown again:</strong>
          <code>{created}</code>
        </div>
      )}
      <ErrorBox error={error ?? tokens.error} title="Token action failed" />
      {tokens.loading && !tokens.data ? (
        <Loading what="tokens" />
      ) : (
        <div class="table-wrap">
          <table class="plain">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Role</th>
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
                <th scope="col">State</th>
                <th scope="col">
                  <span class="skip">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {(tokens.data?.tokens ?? []).map((t) => (
                <tr key={t.id}>
                  <td>
                    {t.name} <span class="mono small muted">{t.id}</span>
                  </td>
                  <td>{t.role}</td>
                  <td class="small">{when(t.createdAt)}</td>
                  <td class="small">{ago(t.lastUsedAt)}</td>
                  <td>
                    <Status state={t.revokedAt ? 'revoked' : t.expiresAt && Date.parse(t.expiresAt) < Date.now() ? 'expired' : 'active'} />
                  </td>
                  <td>
                    {!t.revokedAt && (
                      <button type="button" class="danger" onClick={() => void revoke(t.id)} aria-label={`Revoke token ${t.name}`}>
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
