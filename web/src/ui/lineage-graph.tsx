// A model's lineage drawn as a graph: each version a node to the right of its parent (edges say how it
// was made: an optimized variant such as int8 / pruned, a retrained child with its job, or a plain
// child), and each bundle built from a version a dashed node beside it. Laid out as a tidy tree:
// depth → column, depth-first order → row. Clicking a version selects it.
export interface LineageVersion {
  ref: string;
  parent: string | null;
  variant: string | null;
  status: string;
  jobId?: string;
}
export interface LineageBundle {
  id: string;
  name: string;
  model: string;
}

const NODE_W = 150;
const NODE_H = 34;
const COL = 200;
const ROW = 46;

interface Placed {
  key: string;
  kind: 'version' | 'bundle';
  label: string;
  sub: string;
  x: number;
  y: number;
  parent?: string;
  edge?: string;
  status?: string;
}

export function layoutLineage(versions: LineageVersion[], bundles: LineageBundle[]): Placed[] {
  const known = new Set(versions.map((v) => v.ref));
  const children = new Map<string | null, LineageVersion[]>();
  for (const v of versions) {
    const p = v.parent && known.has(v.parent) ? v.parent : null;
    children.set(p, [...(children.get(p) ?? []), v]);
  }
  const out: Placed[] = [];
  let row = 0;
  const visit = (v: LineageVersion, depth: number, parent: string | null) => {
    const edge = parent === null ? undefined : v.variant ? `optimized: ${v.variant}` : v.jobId ? `retrained (${v.jobId})` : 'child';
    out.push({ key: v.ref, kind: 'version', label: v.ref, sub: v.variant ?? (v.jobId ? 'retrained' : v.status), x: depth * COL, y: row++ * ROW, parent: parent ?? undefined, edge, status: v.status });
    for (const b of bundles.filter((b) => b.model === v.ref)) {
      out.push({ key: `bundle:${b.id}`, kind: 'bundle', label: b.name, sub: `bundle ${b.id.slice(0, 10)}`, x: (depth + 1) * COL, y: row++ * ROW, parent: v.ref, edge: 'bundle' });
    }
    for (const c of children.get(v.ref) ?? []) visit(c, depth + 1, v.ref);
  };
  for (const root of children.get(null) ?? []) visit(root, 0, null);
  return out;
}

export function LineageGraph({ versions, bundles, selected, onSelect }: { versions: LineageVersion[]; bundles: LineageBundle[]; selected?: string; onSelect(ref: string): void }) {
  const nodes = layoutLineage(versions, bundles);
  const at = new Map(nodes.map((n) => [n.key, n]));
  const width = Math.max(...nodes.map((n) => n.x)) + NODE_W + 8;
  const height = Math.max(...nodes.map((n) => n.y)) + NODE_H + 8;
  const edges = nodes.filter((n) => n.parent);
  return (
    <div class="lineage-graph">
      <svg width={width} height={height} viewBox={`-4 -4 ${width} ${height}`} role="group" aria-label="Lineage graph">
        {edges.map((n) => {
          const p = at.get(n.parent!)!;
          const x1 = p.x + NODE_W;
          const y1 = p.y + NODE_H / 2;
          const x2 = n.x;
          const y2 = n.y + NODE_H / 2;
          const mid = (x1 + x2) / 2;
          return (
            <g key={`e-${n.key}`} class="edge" data-from={p.key} data-to={n.key} data-edge={n.edge}>
              <path d={`M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`} fill="none" stroke={n.kind === 'bundle' ? '#9ca3af' : '#64748b'} stroke-dasharray={n.kind === 'bundle' ? '4 3' : undefined} />
              {n.kind === 'version' && (
                <text x={x2 - 6} y={y2 - 5} text-anchor="end" class="edge-label">
                  {n.edge}
                </text>
              )}
            </g>
          );
        })}
        {nodes.map((n) => {
          const isSel = n.key === selected;
          const select = () => n.kind === 'version' && onSelect(n.key);
          return (
            <g
              key={n.key}
              class={`node node-${n.kind}${isSel ? ' selected' : ''}`}
              data-node={n.key}
              transform={`translate(${n.x},${n.y})`}
              {...(n.kind === 'version'
                ? { role: 'button', tabIndex: 0, 'aria-label': `Lineage node ${n.label}`, 'aria-pressed': isSel, onClick: select, onKeyDown: (e: KeyboardEvent) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), select()) }
                : { role: 'img', 'aria-label': `Bundle ${n.label} from ${n.parent}` })}
            >
              <rect width={NODE_W} height={NODE_H} rx={6} class={n.kind === 'bundle' ? 'bundle' : `tone-${n.status === 'rejected' ? 'bad' : 'ok'}`} stroke-dasharray={n.kind === 'bundle' ? '4 3' : undefined} />
              <text x={8} y={14} class="node-label">
                {n.label}
              </text>
              <text x={8} y={27} class="node-sub">
                {n.sub}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
