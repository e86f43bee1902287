// The optimize report's summary as rows (parent, variant, change): size, accuracy, agreement and
// latency, from the analysis report the optimize request returns (server/optimize/analysis.ts). Pure,
// so the browser test can compute what the page must show from the API's stored report.
import { bytes } from '../format.ts';

/** What this form shows of the stored analysis report (server/optimize/analysis.ts). */
interface Side {
  accuracy?: number;
  sizeBytes?: number;
  latency?: { p50Ms: number; p95Ms: number };
}
export interface OptimizeOutcome {
  version: { ref: string; status: string; statusReason: string | null; variant: string | null };
  report: { dataset?: string; samples?: number; baseline?: { ref: string } | null; metrics?: Side; baselineMetrics?: Side; comparison?: { agreement?: number; accuracyDrop?: number; sizeRatio?: number } };
}

const ms = (x: number) => `${x < 1 ? x.toFixed(3) : x.toFixed(2)} ms`;
const signed = (x: number, digits: number) => `${x > 0 ? '+' : x < 0 ? '−' : '±'}${Math.abs(x).toFixed(digits)}`;

/** The rows of the report summary: [what, parent, variant, change]; exported for its test. */
export function summaryRows(r: OptimizeOutcome['report']): Array<[string, string, string, string]> {
  const a = r.metrics ?? {};
  const b = r.baselineMetrics ?? {};
  const rows: Array<[string, string, string, string]> = [];
  if (a.sizeBytes !== undefined && b.sizeBytes !== undefined) rows.push(['size', bytes(b.sizeBytes), bytes(a.sizeBytes), a.sizeBytes <= b.sizeBytes ? `${(b.sizeBytes / a.sizeBytes).toFixed(2)}× smaller` : `${(a.sizeBytes / b.sizeBytes).toFixed(2)}× larger`]);
  if (a.accuracy !== undefined && b.accuracy !== undefined) rows.push(['accuracy', b.accuracy.toFixed(4), a.accuracy.toFixed(4), signed(a.accuracy - b.accuracy, 4)]);
  if (r.comparison?.agreement !== undefined) rows.push(['agreement with the parent', '—', r.comparison.agreement.toFixed(4), '']);
  for (const k of ['p50Ms', 'p95Ms'] as const) {
    const x = a.latency?.[k];
    const y = b.latency?.[k];
    if (x !== undefined && y !== undefined) rows.push([`latency ${k.slice(0, 3)}`, ms(y), ms(x), `${(x / y).toFixed(2)}× the parent's time`]);
  }
  return rows;
}
