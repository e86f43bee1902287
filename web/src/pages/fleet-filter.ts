// The fleet page's filtering and sorting, apart from the page so the bench and tests time the same code.
import { matches, parseSelector, SelectorError, type SelectorTerm } from '../../../server/cohorts/selector.ts';
import type { FleetDevice } from './fleet-types.ts';

export type SortKey = 'online' | 'name' | 'labels' | 'cohorts' | 'version' | 'state' | 'lastSeen' | 'rate' | 'errors' | 'p95';

/** The CLI's selector syntax (server/cohorts/selector.ts, the same parser); the error carries its position. */
export function compileSelector(text: string): { terms: SelectorTerm[] | null; error: { message: string; position: number } | null } {
  try {
    return { terms: text.trim() ? parseSelector(text) : null, error: null };
  } catch (err) {
    if (err instanceof SelectorError) return { terms: null, error: { message: err.message, position: err.position } };
    throw err;
  }
}

export function searchText(d: FleetDevice): string {
  return [d.id, d.name ?? '', ...Object.entries(d.labels).map(([k, v]) => `${k}=${v}`), ...d.cohorts, d.active ? `${d.active.model}@${d.active.version}` : '', d.updateState ?? '', d.lastError?.code ?? '']
    .join(' ')
    .toLowerCase();
}

const value: Record<SortKey, (d: FleetDevice) => string | number> = {
  online: (d) => (d.online ? 0 : 1),
  name: (d) => (d.name ?? d.id).toLowerCase(),
  labels: (d) => Object.entries(d.labels).map(([k, v]) => `${k}=${v}`).join(','),
  cohorts: (d) => d.cohorts.join(','),
  version: (d) => (d.active ? `${d.active.model}@${String(d.active.version).padStart(6, '0')}` : '~'),
  state: (d) => d.updateState ?? '~',
  lastSeen: (d) => (d.lastSeen ? -Date.parse(d.lastSeen) : Infinity),
  rate: (d) => -(d.telemetry.ratePerSecond ?? -1),
  errors: (d) => -(d.telemetry.errorRatio ?? -1),
  p95: (d) => -(d.telemetry.p95 ?? -1),
};

export function filterAndSort(devices: FleetDevice[], opts: { terms: SelectorTerm[] | null; text: string; sort: { key: SortKey; dir: 'asc' | 'desc' } }, texts?: Map<string, string>): FleetDevice[] {
  const needle = opts.text.trim().toLowerCase();
  const out = devices.filter((d) => (!opts.terms || matches(opts.terms, d.labels)) && (!needle || (texts?.get(d.id) ?? searchText(d)).includes(needle)));
  const f = value[opts.sort.key];
  const sign = opts.sort.dir === 'asc' ? 1 : -1;
  const keyed = out.map((d) => [f(d), d] as const);
  keyed.sort((a, b) => (a[0] < b[0] ? -sign : a[0] > b[0] ? sign : 0));
  return keyed.map((k) => k[1]);
}
