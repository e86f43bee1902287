// Human rendering of an evaluation report (stored on a version): the comparison table with its
// baseline, the budget verdicts, the slice gaps and the most important features.
import { table } from '../output.ts';

interface Metrics {
  n: number;
  accuracy?: number;
  f1Macro?: number;
  rmse?: number;
  sizeBytes: number;
  gzipBytes: number;
  latency?: { p50Ms: number; p95Ms: number };
  memory?: { rssDeltaBytes: number };
}

export interface ReportLike {
  kind?: string;
  dataset?: string;
  samples?: number;
  truncatedFrom?: number;
  inputs?: string;
  captured?: { usable: number; unusable: number; minimum: number };
  baseline?: { ref: string; role: string } | null;
  metrics: Metrics;
  baselineMetrics?: Metrics;
  comparison?: { agreement: number; accuracyDrop?: number; sizeRatio: number; gzipRatio: number };
  quality?: { accepted: boolean; reasons: string[] };
  governance?: {
    slices: Array<{ attribute: string; compared: string[]; accuracyGapValue: number; demographicParityDifference: number; equalOpportunityDifference: number }>;
    fairness: { accepted: boolean; reasons: string[] };
    importance?: { metric: string; features: Array<{ feature: string; mean: number; std: number }> };
    notes: string[];
  };
  verdict?: { accepted: boolean; reasons: string[] };
  notes?: string[];
}

const pct = (v?: number) => (v === undefined ? '-' : `${(v * 100).toFixed(2)} %`);
const kib = (v?: number) => (v === undefined ? '-' : `${(v / 1024).toFixed(1)} KiB`);
const ms = (v?: number) => (v === undefined ? '-' : `${v < 1 ? v.toFixed(3) : v.toFixed(2)} ms`);
const mib = (v?: number) => (v === undefined ? '-' : `${(v / 1024 / 1024).toFixed(1)} MiB`);

function row(name: string, m: Metrics, extra: Record<string, string> = {}): Record<string, string> {
  return {
    model: name,
    accuracy: pct(m.accuracy),
    f1: m.f1Macro === undefined ? '-' : m.f1Macro.toFixed(3),
    ...(m.rmse !== undefined ? { rmse: m.rmse.toPrecision(4) } : {}),
    size: kib(m.sizeBytes),
    gzip: kib(m.gzipBytes),
    p50: ms(m.latency?.p50Ms),
    p95: ms(m.latency?.p95Ms),
    memory: mib(m.memory?.rssDeltaBytes),
    agreement: '-',
    ...extra,
  };
}

export function formatEvaluation(r: ReportLike, subject: string): string {
  const lines: string[] = [];
  const on = `${r.dataset ?? '?'}, ${r.samples ?? r.metrics.n} samples${r.truncatedFrom ? ` (first of ${r.truncatedFrom})` : ''}`;
  lines.push(`evaluation on ${on}${r.baseline ? ` against ${r.baseline.role} ${r.baseline.ref}` : ''}`);
  const c = r.captured;
  if (c && r.inputs === 'generated') lines.push(`captured samples: ${c.usable} usable (${c.unusable} unusable), fewer than the ${c.minimum} needed: compared on generated inputs`);
  else if (c?.unusable) lines.push(`captured samples: ${c.unusable} left out (a missing or non-numeric feature, or an image that does not decode)`);
  const rows = [];
  if (r.baseline && r.baselineMetrics) rows.push(row(r.baseline.ref, r.baselineMetrics));
  rows.push(row(subject, r.metrics, r.comparison ? { agreement: pct(r.comparison.agreement), smaller: `${r.comparison.sizeRatio.toFixed(2)}x` } : {}));
  const cols = ['model', 'accuracy', 'f1', ...(r.metrics.rmse !== undefined ? ['rmse'] : []), 'agreement', 'size', 'gzip', 'p50', 'p95', 'memory', ...(r.comparison ? ['smaller'] : [])];
  lines.push(table(rows, cols));
  if (r.quality) lines.push(`quality budget: ${r.quality.accepted ? 'met' : `BROKEN — ${r.quality.reasons.join('; ')}`}`);
  const g = r.governance;
  if (g) {
    for (const s of g.slices) {
      lines.push(`slices by ${s.attribute} (${s.compared.join(', ') || 'none compared'}): accuracy gap ${s.accuracyGapValue.toFixed(3)}, demographic parity ${s.demographicParityDifference.toFixed(3)}, equal opportunity ${s.equalOpportunityDifference.toFixed(3)}`);
    }
    lines.push(`fairness budget: ${g.fairness.accepted ? 'met' : `BROKEN — ${g.fairness.reasons.join('; ')}`}`);
    if (g.importance) {
      const top = g.importance.features.slice(0, 5).map((f) => `${f.feature} ${f.mean.toFixed(3)}`);
      lines.push(`permutation importance (${g.importance.metric} drop): ${top.join(', ')}`);
    }
    for (const n of g.notes) lines.push(`note: ${n}`);
  }
  for (const n of r.notes ?? []) lines.push(`note: ${n}`);
  return lines.join('\n');
}
