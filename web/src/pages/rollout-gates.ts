// A rollout's gates as rows of measured value against threshold, read generically from what the API
// returns: a `gates` list in the last check (`[{ name | kind | gate, value | measured, threshold | limit,
// ok | passed }]`) when the server sends one, else each configured `maxX` / `minX` threshold beside the
// check's measured `x` (maxFailedUpdates ↔ failed, maxErrorRate ↔ errorRate). New gate kinds show up
// without a console change.
export interface GateRow {
  name: string;
  value: unknown;
  threshold: unknown;
  /** true passing, false failing, null not measured yet. */
  ok: boolean | null;
  /** "max" (value must stay at or below) or "min" (at or above), when known. */
  bound?: 'max' | 'min';
  /** The server's own state when it gives one (pass, fail, waiting, no-data, skipped) and why. */
  status?: string;
  reason?: string;
}

/** The server's `status` (server/rollouts/rollout-gates.ts: pass | fail | waiting | no-data | skipped) as passing or not. */
const okOf = (status: unknown): boolean | null => (status === 'pass' ? true : status === 'fail' ? false : null);

const pick = (o: Record<string, unknown>, keys: string[]) => keys.map((k) => o[k]).find((v) => v !== undefined);

export function gateRows(config: Record<string, unknown>, check: Record<string, unknown> | null): GateRow[] {
  const listed = check?.gates;
  if (Array.isArray(listed)) {
    return listed
      .filter((g): g is Record<string, unknown> => g !== null && typeof g === 'object')
      .map((g) => {
        const ok = pick(g, ['ok', 'passed', 'pass']);
        const row: GateRow = { name: String(pick(g, ['name', 'kind', 'gate', 'type']) ?? 'gate'), value: pick(g, ['value', 'measured', 'actual']) ?? null, threshold: pick(g, ['threshold', 'limit', 'max', 'min']) ?? null, ok: typeof ok === 'boolean' ? ok : okOf(g.status) };
        if (typeof g.status === 'string') row.status = g.status;
        if (typeof g.reason === 'string') row.reason = g.reason;
        return row;
      });
  }
  const rows: GateRow[] = [];
  for (const [key, threshold] of Object.entries(config)) {
    const m = /^(max|min)([A-Z].*)$/.exec(key);
    if (!m || typeof threshold !== 'number') continue;
    const measuredKey = m[2] === 'FailedUpdates' ? 'failed' : m[2][0].toLowerCase() + m[2].slice(1);
    let value = check?.[measuredKey];
    if (Array.isArray(value)) value = value.length;
    const bound = m[1] as 'max' | 'min';
    const ok = typeof value === 'number' ? (bound === 'max' ? value <= threshold : value >= threshold) : null;
    rows.push({ name: key, value: value ?? null, threshold, ok, bound });
  }
  return rows;
}

/** The state column: the server's word when it gave one, else passing / failing / not measured. */
export function stateText(g: GateRow): string {
  if (g.status === 'waiting' || g.status === 'no-data' || g.status === 'skipped') return g.status;
  return g.ok === null ? 'not measured' : g.ok ? 'passing' : 'failing';
}

export function show(v: unknown): string {
  if (v === null || v === undefined) return 'not measured yet';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(4);
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}
