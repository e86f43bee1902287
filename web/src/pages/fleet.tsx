// Fleet: every device in one virtualised table, filtered by label selector (CLI syntax, error at the
// position) and text, sorted by any column; select many to label, approve or revoke.
import { useMemo, useState } from 'preact/hooks';
import { api, call, readable } from '../api.ts';
import { streamStatus } from '../events.ts';
import { ago, labelsText, num, pct } from '../format.ts';
import { can } from '../session.ts';
import { ErrorBox, Loading } from '../ui/notice.tsx';
import { OnlineDot, Status } from '../ui/status.tsx';
import { useEventReload, useInterval, useLoad } from '../ui/use-load.ts';
import { type Column, VirtualTable } from '../ui/virtual-table.tsx';
import { EnrollFirst } from './enroll-first.tsx';
import { compileSelector, filterAndSort, searchText, type SortKey } from './fleet-filter.ts';
import type { FleetDevice } from './fleet-types.ts';

const columns: Column<FleetDevice>[] = [
  { key: 'online', label: 'Online', width: '4.5rem', sortable: true, render: (d) => <OnlineDot online={d.online} /> },
  {
    key: 'name',
    label: 'Device',
    width: 'minmax(9rem, 1.1fr)',
    sortable: true,
    render: (d) => (
      <a href={`/devices/${encodeURIComponent(d.id)}`} class="strong">
        {d.name ?? d.id}
        {d.status !== 'approved' && <Status state={d.status} />}
      </a>
    ),
  },
  { key: 'labels', label: 'Labels', width: 'minmax(10rem, 1.5fr)', sortable: true, render: (d) => <span class="mono small clip" title={labelsText(d.labels)}>{labelsText(d.labels) || '—'}</span> },
  { key: 'cohorts', label: 'Cohorts', width: 'minmax(5rem, 0.7fr)', sortable: true, render: (d) => <span class="clip">{d.cohorts.join(', ') || '—'}</span> },
  {
    key: 'version',
    label: 'Model',
    width: 'minmax(9rem, 1.2fr)',
    sortable: true,
    render: (d) => (
      <span class="clip mono small" title={d.active ? `bundle ${d.active.bundleName} (${d.active.bundleId})` : 'nothing active'}>
        {d.active ? `${d.active.model}@${d.active.version}` : '—'}
        {d.desired && d.desired.bundleId !== d.active?.bundleId && <span class="muted"> → {d.desired.model}@{d.desired.version}</span>}
      </span>
    ),
  },
  {
    key: 'state',
    label: 'Update',
    width: 'minmax(7rem, 1fr)',
    sortable: true,
    render: (d) => (
      <span class="clip">
        <Status state={d.updateState} />
        {d.lastError && (d.updateState === 'failed' || d.updateState === 'rolled_back') && (
          <span class="reason" title={d.lastError.message}>
            {d.lastError.code}
          </span>
        )}
      </span>
    ),
  },
  { key: 'lastSeen', label: 'Last seen', width: '6.5rem', sortable: true, render: (d) => <span title={d.lastSeen ?? ''}>{ago(d.lastSeen)}</span> },
  { key: 'rate', label: 'Req/s', width: '4.5rem', sortable: true, render: (d) => <span class="num">{num(d.telemetry.ratePerSecond, 2)}</span> },
  { key: 'errors', label: 'Errors', width: '5rem', sortable: true, render: (d) => <span class={`num${(d.telemetry.errorRatio ?? 0) > 0.05 ? ' tone-text-bad' : ''}`}>{pct(d.telemetry.errorRatio)}</span> },
  { key: 'p95', label: 'p95 ms', width: '5rem', sortable: true, render: (d) => <span class="num">{num(d.telemetry.p95, 1)}</span> },
];

export function FleetPage() {
  const fleet = useLoad(() => call(api.api.v1.fleet.$get({ query: { window: '15m' } })));
  const [selectorText, setSelectorText] = useState(new URLSearchParams(location.search).get('selector') ?? '');
  const [text, setText] = useState('');
  const [sort, setSort] = useState<{ key: SortKey; dir: 'asc' | 'desc' }>({ key: 'name', dir: 'asc' });
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const selector = useMemo(() => compileSelector(selectorText), [selectorText]);
  const devices = fleet.data?.devices ?? [];
  const texts = useMemo(() => new Map(devices.map((d) => [d.id, searchText(d)])), [devices]);
  const shown = useMemo(() => filterAndSort(devices, { terms: selector.terms, text, sort }, texts), [devices, selector.terms, text, sort, texts]);

  // Live: device events refresh the table (coalesced); without the event stream, poll.
  useEventReload(['device', 'deployment'], fleet.reload);
  useInterval(() => void fleet.reload(), streamStatus.value === 'live' ? 60_000 : 5_000);

  const onSort = (key: string) => setSort((s) => ({ key: key as SortKey, dir: s.key === key && s.dir === 'asc' ? 'desc' : 'asc' }));
  const onSelect = (keys: string[], on: boolean) =>
    setSelected((prev) => {
      const next = new Set(prev);
      for (const k of keys) on ? next.add(k) : next.delete(k);
      return next;
    });

  if (fleet.loading && !fleet.data) return <Loading what="the fleet" />;
  if (fleet.error && !fleet.data) return <ErrorBox error={fleet.error} title="Could not load the fleet" />;
  if (!devices.length) return <EnrollFirst />;

  const online = devices.filter((d) => d.online).length;
  const failed = devices.filter((d) => d.updateState === 'failed' || d.updateState === 'rolled_back').length;
  return (
    <div class="page fleet">
      <header class="page-head">
        <h1>Fleet</h1>
        <div class="stats" aria-label="Fleet summary">
          <span>
            <b>{devices.length}</b> devices
          </span>
          <span>
            <b class="tone-text-ok">{online}</b> online
          </span>
          <span>
            <b class={failed ? 'tone-text-bad' : ''}>{failed}</b> failed updates
          </span>
        </div>
      </header>
      <div class="filters">
        <label class="grow">
          Label selector
          <input
            class={selector.error ? 'invalid mono' : 'mono'}
            value={selectorText}
            placeholder="site=berlin,hw in (rpi4,jetson),!quarantine"
            aria-invalid={Boolean(selector.error)}
            aria-describedby={selector.error ? 'selector-error' : undefined}
            onInput={(e) => setSelectorText((e.target as HTMLInputElement).value)}
          />
        </label>
        <label class="grow">
          Search
          <input type="search" value={text} placeholder="name, id, label, model, state, error code" onInput={(e) => setText((e.target as HTMLInputElement).value)} />
        </label>
      </div>
      {selector.error && (
        <div id="selector-error" class="selector-error" role="alert">
          <pre class="mono">
            {selectorText}
            {'\n'}
            {' '.repeat(selector.error.position)}^
          </pre>
          {selector.error.message}
        </div>
      )}
      <ErrorBox error={fleet.error} title="Refresh failed (showing the last answer)" />
      {selected.size > 0 && <BulkActions ids={[...selected]} devices={devices} onDone={() => void fleet.reload()} onClear={() => setSelected(new Set())} />}
      <p class="muted small" aria-live="polite">
        Showing {shown.length} of {devices.length}
        {selected.size ? `, ${selected.size} selected` : ''}
      </p>
      <VirtualTable
        label="Devices"
        rows={shown}
        columns={columns}
        rowKey={(d) => d.id}
        rowName={(d) => d.name ?? d.id}
        sort={sort}
        onSort={onSort}
        selected={selected}
        onSelect={can('devices:write') ? onSelect : undefined}
      />
    </div>
  );
}

function BulkActions({ ids, devices, onDone, onClear }: { ids: string[]; devices: FleetDevice[]; onDone(): void; onClear(): void }) {
  const [label, setLabel] = useState('');
  const [busy, setBusy] = useState<string | null>(null);
  const [result, setResult] = useState<{ ok: number; errors: string[] } | null>(null);
  const nameOf = (id: string) => devices.find((d) => d.id === id)?.name ?? id;
  const each = async (what: string, fn: (id: string) => Promise<unknown>) => {
    setBusy(what);
    const errors: string[] = [];
    let ok = 0;
    // A few at a time: fast for hundreds of devices without flooding the server.
    const queue = [...ids];
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        for (let id = queue.shift(); id; id = queue.shift()) {
          try {
            await fn(id);
            ok++;
          } catch (err) {
            errors.push(`${nameOf(id)}: ${readable(err)}`);
          }
        }
      }),
    );
    setBusy(null);
    setResult({ ok, errors });
    onDone();
  };
  const applyLabel = (e: Event) => {
    e.preventDefault();
    const set: Record<string, string> = {};
    const remove: string[] = [];
    for (const part of label.split(',').map((s) => s.trim()).filter(Boolean)) {
      if (part.startsWith('-')) remove.push(part.slice(1));
      else {
        const [k, v = ''] = part.split('=');
        set[k.trim()] = v.trim();
      }
    }
    void each('label', (id) => call(api.api.v1.devices[':id'].labels.$patch({ param: { id }, json: { set, remove } })));
  };
  return (
    <section class="bulk card" aria-label="Actions on the selected devices">
      <strong>{ids.length} selected</strong>
      <form class="row" onSubmit={applyLabel}>
        <label>
          Labels (k=v, -k removes)
          <input value={label} onInput={(e) => setLabel((e.target as HTMLInputElement).value)} placeholder="ring=canary,-quarantine" required />
        </label>
        <button type="submit" disabled={Boolean(busy)}>
          {busy === 'label' ? 'Labelling…' : 'Apply labels'}
        </button>
      </form>
      <button type="button" disabled={Boolean(busy)} onClick={() => void each('approve', (id) => call(api.api.v1.devices[':id'].approve.$post({ param: { id } })))}>
        Approve
      </button>
      <button
        type="button"
        class="danger"
        disabled={Boolean(busy)}
        onClick={() => confirm(`Revoke ${ids.length} device(s)? They are disconnected at once and must enroll again.`) && void each('revoke', (id) => call(api.api.v1.devices[':id'].revoke.$post({ param: { id } })))}
      >
        Revoke
      </button>
      <button type="button" class="link" onClick={onClear}>
        Clear selection
      </button>
      {result && (
        <div role="status" class={result.errors.length ? 'notice notice-error' : 'notice notice-ok'}>
          {result.ok} done{result.errors.length ? `, ${result.errors.length} failed:` : '.'}
          {result.errors.length > 0 && (
            <ul>
              {result.errors.slice(0, 5).map((e) => (
                <li key={e}>{e}</li>
              ))}
            </ul>
          )}
        </div>
      )}
    </section>
  );
}
