// One shadow window's figures (and the running totals, the same shape): answers of the active model and
// of the candidate compared per output tensor, latencies kept in a log-scale histogram so the totals'
// quantiles stay exact to one bucket (5 %) however long the shadow runs, in constant memory.
import { MAX_SHADOW_CLASSES, MAX_SHADOW_OUTPUTS, type ShadowFigures, type ShadowOutput } from '../../protocol/messages/shadow.ts';

export interface PlainTensor {
  dims: readonly number[];
  data: ArrayLike<number>;
}

const BUCKETS = 400;
const BASE_MS = 0.01;
const GROWTH = Math.log(1.05);

/** Latencies in geometric buckets (5 % wide, 0.01 ms … hours). */
export class LatencyHistogram {
  readonly counts = new Uint32Array(BUCKETS);
  n = 0;

  add(ms: number): void {
    const i = ms <= BASE_MS ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log(ms / BASE_MS) / GROWTH));
    this.counts[i]++;
    this.n++;
  }

  /** The q-quantile as the middle of its bucket; 0 when empty. */
  quantile(q: number): number {
    if (!this.n) return 0;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return round(BASE_MS * Math.exp((i + 0.5) * GROWTH));
    }
    return 0;
  }
}

/**
 * Accumulates compared requests. `kind` per output: `top1` (classifiers: arg-max of the last axis per
 * row) or `mad` (regressors, and single-score outputs where an arg-max means nothing).
 */
export class ShadowAccumulator {
  compared = 0;
  skipped = 0;
  candidateErrors = 0;
  private readonly outputs = new Map<string, ShadowOutput>();
  private readonly active = new LatencyHistogram();
  private readonly candidate = new LatencyHistogram();

  constructor(private readonly classifier: boolean) {}

  /** One request answered by both: compares every output both produced. */
  add(active: Record<string, PlainTensor>, candidate: Record<string, PlainTensor>, latency: { activeMs: number; candidateMs: number }): void {
    this.compared++;
    this.active.add(latency.activeMs);
    this.candidate.add(latency.candidateMs);
    for (const [name, a] of Object.entries(active)) {
      const c = candidate[name];
      if (!c || c.data.length !== a.data.length) continue;
      const classes = a.dims.at(-1) ?? 1;
      const top1 = this.classifier && classes > 1 && a.data.length % classes === 0;
      let out = this.outputs.get(name);
      if (!out) {
        if (this.outputs.size >= MAX_SHADOW_OUTPUTS) continue;
        out = top1
          ? { output: name, kind: 'top1', rows: 0, matches: 0, activeClasses: [], candidateClasses: [] }
          : { output: name, kind: 'mad', values: 0, absDiffSum: 0, activeSum: 0, candidateSum: 0 };
        this.outputs.set(name, out);
      }
      if (out.kind === 'top1') {
        for (let r = 0; r < a.data.length / classes; r++) {
          const ka = argmax(a.data, r * classes, classes);
          const kc = argmax(c.data, r * classes, classes);
          out.rows++;
          if (ka === kc) out.matches++;
          bump(out.activeClasses, ka);
          bump(out.candidateClasses, kc);
        }
      } else {
        for (let i = 0; i < a.data.length; i++) {
          const x = Number(a.data[i]);
          const y = Number(c.data[i]);
          if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
          out.values++;
          out.absDiffSum += Math.abs(x - y);
          out.activeSum += x;
          out.candidateSum += y;
        }
      }
    }
  }

  figures(): ShadowFigures {
    return {
      compared: this.compared,
      skipped: this.skipped,
      candidateErrors: this.candidateErrors,
      outputs: [...this.outputs.values()].map((o) => (o.kind === 'top1' ? { ...o, activeClasses: [...o.activeClasses], candidateClasses: [...o.candidateClasses] } : { ...o })),
      latencyMs: this.compared
        ? { active: { p50: this.active.quantile(0.5), p95: this.active.quantile(0.95) }, candidate: { p50: this.candidate.quantile(0.5), p95: this.candidate.quantile(0.95) } }
        : null,
    };
  }
}

function argmax(data: ArrayLike<number>, from: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (Number(data[from + i]) > Number(data[from + best])) best = i;
  return best;
}

function bump(counts: number[], k: number): void {
  if (k >= MAX_SHADOW_CLASSES) return;
  while (counts.length <= k) counts.push(0);
  counts[k]++;
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
