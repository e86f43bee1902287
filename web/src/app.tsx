// The console shell: sign-in gate, sidebar navigation, live-stream indicator, and the page for the path.
import type { ComponentType } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { startEvents, stopEvents, streamStatus } from './events.ts';
import { match, navigate, onLinkClick, route } from './router.ts';
import { me, session } from './session.ts';
import { Logo } from './ui/logo.tsx';
import { restoreSession, SignIn } from './sign-in.tsx';
import { AuditPage } from './pages/audit.tsx';
import { CohortsPage } from './pages/cohorts.tsx';
import { DevicePage } from './pages/device.tsx';
import { DriftPage } from './pages/drift.tsx';
import { FleetPage } from './pages/fleet.tsx';
import { RetrainingPage } from './pages/retraining.tsx';
import { ModelsPage } from './pages/models.tsx';
import { RolloutsPage } from './pages/rollouts.tsx';
import { SettingsPage } from './pages/settings.tsx';
import { TokensPage } from './pages/tokens.tsx';
import { lazyPage } from './ui/lazy-page.tsx';

// onnxruntime-web and the playground load only when the page opens (bench: the first load stays small).
const PlaygroundPage = lazyPage(() => import('./pages/playground.tsx').then((m) => m.PlaygroundPage), 'playground');

interface PageDef {
  path: string;
  title: string;
  nav?: string;
  adminOnly?: boolean;
  component: ComponentType<{ params: Record<string, string> }>;
}

const PAGES: PageDef[] = [
  { path: '/', title: 'Fleet', nav: 'Fleet', component: FleetPage },
  { path: '/devices/:id', title: 'Device', component: DevicePage },
  { path: '/cohorts', title: 'Cohorts & deployments', nav: 'Cohorts & deployments', component: CohortsPage },
  { path: '/rollouts', title: 'Rollouts', nav: 'Rollouts', component: RolloutsPage },
  { path: '/models', title: 'Models', nav: 'Models', component: ModelsPage },
  { path: '/playground', title: 'Playground', nav: 'Playground', component: PlaygroundPage },
  { path: '/drift', title: 'Drift', nav: 'Drift', component: DriftPage },
  { path: '/retraining', title: 'Retraining', nav: 'Retraining', component: RetrainingPage },
  { path: '/settings', title: 'Agent settings', nav: 'Agent settings', component: SettingsPage },
  { path: '/audit', title: 'Audit log', nav: 'Audit log', adminOnly: true, component: AuditPage },
  { path: '/tokens', title: 'API tokens', nav: 'API tokens', adminOnly: true, component: TokensPage },
];

export function App() {
  const [restoring, setRestoring] = useState(Boolean(session.token()));
  useEffect(() => {
    void restoreSession().finally(() => setRestoring(false));
  }, []);
  const signedIn = me.value !== null;
  useEffect(() => {
    if (signedIn) startEvents();
    return stopEvents;
  }, [signedIn]);
  if (restoring) return <p class="muted center">Loading…</p>;
  if (!signedIn) return <SignIn />;

  const path = route.value.split('?')[0];
  let page: PageDef | undefined;
  let params: Record<string, string> = {};
  for (const p of PAGES) {
    const m = match(p.path, path);
    if (m) {
      page = p;
      params = m;
      break;
    }
  }
  document.title = `${page?.title ?? 'Not found'} · Flotilla`;
  const Page = page?.component;
  const current = (p: PageDef) => (p.path === '/' ? path === '/' || path.startsWith('/devices/') : path.startsWith(p.path));
  return (
    <div class="shell" onClick={onLinkClick}>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <aside class="sidebar">
        <a href="/" class="brand" aria-label="Flotilla home">
          <Logo /> Flotilla
        </a>
        <nav aria-label="Main">
          <ul>
            {PAGES.filter((p) => p.nav && (!p.adminOnly || me.value!.role === 'admin')).map((p) => (
              <li key={p.path}>
                <a href={p.path} aria-current={current(p) ? 'page' : undefined}>
                  {p.nav}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span class={`stream stream-${streamStatus.value}`} role="status" title="Live updates">
            {streamStatus.value === 'live' ? '● live' : streamStatus.value === 'unavailable' ? '○ polling' : '○ connecting'}
          </span>
          <div>
            <span class="small">{me.value!.name}</span> <span class="badge tone-idle">{me.value!.role}</span>
          </div>
          <button type="button" class="link" onClick={() => (session.signOut(), navigate('/'))}>
            Sign out
          </button>
        </div>
      </aside>
      <main id="main" tabIndex={-1}>
        {Page ? (
          <Page params={params} key={path} />
        ) : (
          <div class="notice notice-info">
            No page at <code>{path}</code>. <a href="/">Back to the fleet</a>.
          </div>
        )}
      </main>
    </div>
  );
}
