// A windowed table: only the rows in view (plus a few) are in the DOM, so 10,000 devices scroll and
// re-sort smoothly. Rows have a fixed height, which makes the window arithmetic exact without
// measuring (and is what a dense operator table wants anyway). ARIA table roles keep it readable
// to screen readers; aria-rowcount/aria-rowindex tell them how many rows exist beyond the window.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

export interface Column<T> {
  key: string;
  label: string;
  /** A CSS grid track, e.g. '8rem' or 'minmax(10rem, 2fr)'. */
  width: string;
  sortable?: boolean;
  render(row: T): ComponentChildren;
}

export interface VirtualTableProps<T> {
  label: string;
  rows: T[];
  columns: Column<T>[];
  rowKey(row: T): string;
  rowHeight?: number;
  sort?: { key: string; dir: 'asc' | 'desc' };
  onSort?(key: string): void;
  selected?: ReadonlySet<string>;
  onSelect?(keys: string[], on: boolean): void;
  rowName?(row: T): string;
}

const OVERSCAN = 8;

export function VirtualTable<T>(p: VirtualTableProps<T>) {
  const rowHeight = p.rowHeight ?? 40;
  const body = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(600);
  useEffect(() => {
    const el = body.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setViewport(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - OVERSCAN);
  const last = Math.min(p.rows.length, Math.ceil((scrollTop + viewport) / rowHeight) + OVERSCAN);
  const selectable = Boolean(p.onSelect);
  const template = [selectable ? '2.75rem' : null, ...p.columns.map((c) => c.width)].filter(Boolean).join(' ');
  const allSelected = selectable && p.rows.length > 0 && p.rows.every((r) => p.selected?.has(p.rowKey(r)));

  return (
    <div class="vtable" role="table" aria-label={p.label} aria-rowcount={p.rows.length + 1}>
      <div class="vrow vhead" role="row" aria-rowindex={1} style={{ gridTemplateColumns: template }}>
        {selectable && (
          <span role="columnheader" class="vcell vcheck">
            <input
              type="checkbox"
              aria-label={allSelected ? 'Deselect all shown rows' : 'Select all shown rows'}
              checked={allSelected}
              onChange={(e) => p.onSelect!(p.rows.map(p.rowKey), (e.target as HTMLInputElement).checked)}
            />
          </span>
        )}
        {p.columns.map((c) => {
          const dir = p.sort?.key === c.key ? p.sort.dir : null;
          return (
            <span role="columnheader" class="vcell" key={c.key} aria-sort={dir === 'asc' ? 'ascending' : dir === 'desc' ? 'descending' : 'none'}>
              {c.sortable && p.onSort ? (
                <button type="button" class="sort" onClick={() => p.onSort!(c.key)} aria-label={`Sort by ${c.label}`}>
                  {c.label}
                  <span aria-hidden="true">{dir === 'asc' ? ' ▲' : dir === 'desc' ? ' ▼' : ''}</span>
                </button>
              ) : (
                c.label
              )}
            </span>
          );
        })}
      </div>
      <div class="vbody" ref={body} onScroll={(e) => setScrollTop((e.target as HTMLDivElement).scrollTop)} role="rowgroup">
        <div style={{ height: `${p.rows.length * rowHeight}px`, position: 'relative' }}>
          {p.rows.slice(first, last).map((row, i) => {
            const k = p.rowKey(row);
            const index = first + i;
            const checked = p.selected?.has(k) ?? false;
            return (
              <div
                class={`vrow${checked ? ' selected' : ''}`}
                role="row"
                key={k}
                aria-rowindex={index + 2}
                aria-selected={selectable ? checked : undefined}
                style={{ gridTemplateColumns: template, height: `${rowHeight}px`, transform: `translateY(${index * rowHeight}px)` }}
              >
                {selectable && (
                  <span role="cell" class="vcell vcheck">
                    <input type="checkbox" aria-label={`Select ${p.rowName ? p.rowName(row) : k}`} checked={checked} onChange={(e) => p.onSelect!([k], (e.target as HTMLInputElement).checked)} />
                  </span>
                )}
                {p.columns.map((c) => (
                  <span role="cell" class="vcell" key={c.key}>
                    {c.render(row)}
                  </span>
                ))}
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
}
