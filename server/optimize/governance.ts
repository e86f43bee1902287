/**
 * The governance part of a version's evaluation report in one call: slice metrics and fairness gaps
 * for every group column of the dataset (classifiers), checked against a fairness budget, and
 * permutation importance for tabular models with labels.
 *
 * @example
 * const gov = await governanceReport(bytes, dataset, { budget: { maxDemographicParityDifference: 0.15 } });
 * gov.fairness.accepted; gov.slices[0].equalOpportunityDifference; gov.importance?.features[0].feature;
 */
import { evaluateModel, type BudgetVerdict, type EvalDataset, type EvalOptions, type ModelEvaluation } from './evaluate.ts';
import { checkFairnessBudget, fairnessReport, type AttributeReport, type FairnessBudget } from './fairness.ts';
import { permutationImportance, type ImportanceOptions, type ImportanceReport } from './importance.ts';

export interface GovernanceOptions {
  budget?: FairnessBudget;
  positiveClass?: number;
  minGroupSize?: number;
  /** `false` skips permutation importance. */
  importance?: ImportanceOptions | false;
  sessionOptions?: EvalOptions['sessionOptions'];
}

export interface GovernanceReport {
  slices: AttributeReport[];
  fairness: BudgetVerdict;
  importance?: ImportanceReport;
  notes: string[];
}

/** `evaluation`: the model's evaluation on the same dataset, when already computed (saves a pass). */
export async function governanceReport(bytes: Uint8Array, dataset: EvalDataset, opts: GovernanceOptions = {}, evaluation?: ModelEvaluation): Promise<GovernanceReport> {
  const notes: string[] = [];
  let slices: AttributeReport[] = [];
  const hasGroups = dataset.groups && Object.keys(dataset.groups).length > 0;
  if (dataset.task !== 'classification') notes.push('slice fairness metrics are computed for classifiers only');
  else if (!hasGroups) notes.push('the dataset marks no group attribute: no slice metrics');
  else {
    const ev = evaluation ?? (await evaluateModel(bytes, dataset, { latency: false, memory: false, sessionOptions: opts.sessionOptions }));
    slices = fairnessReport({
      predictions: ev.predictions!,
      labels: dataset.labels,
      classes: ev.outputs.width,
      groups: dataset.groups!,
      positiveClass: opts.positiveClass,
      minGroupSize: opts.minGroupSize,
    });
  }
  let importance: ImportanceReport | undefined;
  if (opts.importance !== false) {
    if (dataset.sampleShape.length === 1 && dataset.labels) importance = await permutationImportance(bytes, dataset, { sessionOptions: opts.sessionOptions, ...(opts.importance ?? {}) });
    else notes.push('permutation importance needs a tabular dataset with labels');
  }
  return { slices, fairness: checkFairnessBudget(slices, opts.budget), importance, notes };
}
