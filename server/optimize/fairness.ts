/**
 * Per-slice metrics for classifiers: for each group attribute column of the evaluation dataset,
 * accuracy, predicted-class rates and per-class recall per group, and the largest gaps between groups:
 *
 * - accuracy gap: max − min group accuracy;
 * - demographic parity difference: max over classes c of (max − min over groups of P(ŷ = c | group));
 *   with `positiveClass`, only that class (the usual binary definition);
 * - equal opportunity difference: max over classes c of (max − min over groups of recall_c = P(ŷ = c | y = c, group)),
 *   over the groups that have samples of class c; with `positiveClass`, only that class (TPR gap).
 *
 * Groups smaller than `minGroupSize` are listed but left out of the gaps (their rates are noise).
 *
 * @example
 * const [region] = fairnessReport({ predictions, labels, classes: 3, groups: { region: regions } });
 * region.demographicParityDifference; // 0.07
 * checkFairnessBudget([region]);       // { accepted: true, reasons: [] }
 */
import type { BudgetVerdict } from './evaluate.ts';

export interface FairnessInput {
  predictions: ArrayLike<number>;
  labels?: ArrayLike<number>;
  classes: number;
  /** Column name → one group value per sample. */
  groups: Record<string, ArrayLike<string>>;
  positiveClass?: number;
  /** Default 20. */
  minGroupSize?: number;
}

export interface GroupMetrics {
  group: string;
  n: number;
  accuracy?: number;
  /** P(ŷ = c | group) per class. */
  predictedRate: number[];
  /** P(ŷ = c | y = c, group) per class; null where the group has no sample of class c. */
  recall?: Array<number | null>;
}

export interface GapDetail {
  value: number;
  /** The class the gap was found on (for parity and opportunity). */
  class?: number;
  /** Group with the highest / lowest value. */
  high: string;
  low: string;
}

export interface AttributeReport {
  attribute: string;
  groups: GroupMetrics[];
  /** Groups large enough to be compared. */
  compared: string[];
  accuracyGap?: GapDetail;
  demographicParity?: GapDetail;
  equalOpportunity?: GapDetail;
  /** Shorthands: the gap values (0 when fewer than two groups compare). */
  accuracyGapValue: number;
  demographicParityDifference: number;
  equalOpportunityDifference: number;
  notes: string[];
}

export function fairnessReport(input: FairnessInput): AttributeReport[] {
  const minGroupSize = input.minGroupSize ?? 20;
  const n = input.predictions.length;
  if (input.labels && input.labels.length !== n) throw new Error(`fairness: ${n} predictions but ${input.labels.length} labels`);
  return Object.entries(input.groups).map(([attribute, column]) => {
    if (column.length !== n) throw new Error(`fairness: column ${attribute} has ${column.length} values for ${n} samples`);
    const rows = new Map<string, number[]>();
    for (let i = 0; i < n; i++) {
      const g = String(column[i]);
      const list = rows.get(g);
      if (list) list.push(i);
      else rows.set(g, [i]);
    }
    const groups = [...rows.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([group, idx]) => groupMetrics(group, idx, input));
    const compared = groups.filter((g) => g.n >= minGroupSize);
    const notes: string[] = [];
    const small = groups.filter((g) => g.n < minGroupSize);
    if (small.length) notes.push(`left out of the gaps (fewer than ${minGroupSize} samples): ${small.map((g) => `${g.group} (${g.n})`).join(', ')}`);
    const classes = input.positiveClass !== undefined ? [input.positiveClass] : Array.from({ length: input.classes }, (_, c) => c);
    const accuracyGap = input.labels ? gap(compared, (g) => g.accuracy) : undefined;
    const demographicParity = maxOver(classes, (c) => gap(compared, (g) => g.predictedRate[c]));
    const equalOpportunity = input.labels ? maxOver(classes, (c) => gap(compared, (g) => g.recall?.[c] ?? undefined)) : undefined;
    if (compared.length < 2) notes.push('fewer than two groups large enough to compare');
    return {
      attribute,
      groups,
      compared: compared.map((g) => g.group),
      accuracyGap,
      demographicParity,
      equalOpportunity,
      accuracyGapValue: accuracyGap?.value ?? 0,
      demographicParityDifference: demographicParity?.value ?? 0,
      equalOpportunityDifference: equalOpportunity?.value ?? 0,
      notes,
    };
  });
}

function groupMetrics(group: string, idx: number[], input: FairnessInput): GroupMetrics {
  const C = input.classes;
  const predicted = new Array<number>(C).fill(0);
  const actual = new Array<number>(C).fill(0);
  const hits = new Array<number>(C).fill(0);
  let correct = 0;
  for (const i of idx) {
    const p = input.predictions[i];
    if (p >= 0 && p < C) predicted[p]++;
    if (input.labels) {
      const y = input.labels[i];
      if (y >= 0 && y < C) actual[y]++;
      if (p === y) {
        correct++;
        if (y >= 0 && y < C) hits[y]++;
      }
    }
  }
  const m: GroupMetrics = { group, n: idx.length, predictedRate: predicted.map((c) => c / idx.length) };
  if (input.labels) {
    m.accuracy = correct / idx.length;
    m.recall = actual.map((a, c) => (a ? hits[c] / a : null));
  }
  return m;
}

function gap(groups: GroupMetrics[], value: (g: GroupMetrics) => number | undefined | null): GapDetail | undefined {
  let high: { g: string; v: number } | undefined;
  let low: { g: string; v: number } | undefined;
  let count = 0;
  for (const g of groups) {
    const v = value(g);
    if (v === undefined || v === null || Number.isNaN(v)) continue;
    count++;
    if (!high || v > high.v) high = { g: g.group, v };
    if (!low || v < low.v) low = { g: g.group, v };
  }
  if (!high || !low || count < 2) return undefined;
  return { value: high.v - low.v, high: high.g, low: low.g };
}

function maxOver(classes: number[], f: (c: number) => GapDetail | undefined): GapDetail | undefined {
  let best: GapDetail | undefined;
  for (const c of classes) {
    const d = f(c);
    if (d && (!best || d.value > best.value)) best = { ...d, class: c };
  }
  return best;
}

export interface FairnessBudget {
  /** Default 0.05 (5 points). */
  maxAccuracyGap?: number;
  /** Default 0.1. */
  maxDemographicParityDifference?: number;
  /** Default 0.1. */
  maxEqualOpportunityDifference?: number;
}

export const DEFAULT_FAIRNESS_BUDGET: Required<FairnessBudget> = { maxAccuracyGap: 0.05, maxDemographicParityDifference: 0.1, maxEqualOpportunityDifference: 0.1 };

export function checkFairnessBudget(reports: AttributeReport[], budget: FairnessBudget = {}): BudgetVerdict {
  const b = { ...DEFAULT_FAIRNESS_BUDGET, ...budget };
  const reasons: string[] = [];
  const f = (v: number) => v.toFixed(3);
  for (const r of reports) {
    const cls = (d?: GapDetail) => (d?.class !== undefined ? ` on class ${d.class}` : '');
    if (r.accuracyGap && r.accuracyGap.value > b.maxAccuracyGap) reasons.push(`${r.attribute}: accuracy gap ${f(r.accuracyGap.value)} (${r.accuracyGap.high} vs ${r.accuracyGap.low}) > ${b.maxAccuracyGap}`);
    if (r.demographicParity && r.demographicParity.value > b.maxDemographicParityDifference) {
      reasons.push(`${r.attribute}: demographic parity difference ${f(r.demographicParity.value)}${cls(r.demographicParity)} (${r.demographicParity.high} vs ${r.demographicParity.low}) > ${b.maxDemographicParityDifference}`);
    }
    if (r.equalOpportunity && r.equalOpportunity.value > b.maxEqualOpportunityDifference) {
      reasons.push(`${r.attribute}: equal opportunity difference ${f(r.equalOpportunity.value)}${cls(r.equalOpportunity)} (${r.equalOpportunity.high} vs ${r.equalOpportunity.low}) > ${b.maxEqualOpportunityDifference}`);
    }
  }
  return { accepted: reasons.length === 0, reasons };
}
