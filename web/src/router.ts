// A small History-API router: the path is the page (so links can be shared and the server's SPA
// fallback answers any of them); query strings carry filters.
import { signal } from '@preact/signals';

export const route = signal(location.pathname + location.search);
addEventListener('popstate', () => (route.value = location.pathname + location.search));

export function navigate(to: string, replace = false): void {
  if (to === route.value) return;
  history[replace ? 'replaceState' : 'pushState'](null, '', to);
  route.value = to;
  window.scrollTo(0, 0);
}

/** Matches `/devices/:id` style patterns; returns the params or null. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const p = pattern.split('/');
  const s = path.split('?')[0].split('/');
  if (p.length !== s.length) return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].startsWith(':')) out[p[i].slice(1)] = decodeURIComponent(s[i]);
    else if (p[i] !== s[i]) return null;
  }
  return out;
}

/** Intercepts clicks on same-origin links so navigation stays in the page. */
export function onLinkClick(e: MouseEvent): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as Element).closest('a');
  if (!a || a.target || a.origin !== location.origin || a.hasAttribute('download')) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
}
