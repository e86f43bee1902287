/**
 * Synthetic tabular data for the tabular demo model: 8 numeric sensor-like features f0…f7 on very
 * different scales → 3 classes `low` / `medium` / `high` (0, 1, 2), plus a categorical `region`
 * (north / south) that is not a model input but lets fairness/slice metrics split the data.
 *
 * The class is a noisy threshold of a non-linear score of the standardised features
 *   s = z0 + 0.6·z2 + 0.8·(z3² − 1) + 0.7·(|z1| − 0.8) + N(0, 0.08²)
 * so a linear model is not enough but a small MLP is (the noise caps accuracy at ≈ 97 %).
 * f5…f7 are distractors. `south` reads ~2 units warmer on f0, so class balance differs per region.
 *
 * `shift` simulates drift: `{ f0: 1.5 }` adds 1.5 × (f0's population std) to f0. By default the shift
 * is applied after labelling — a sensor offset, the label still follows the true state — which is
 * the drift that makes a deployed model wrong and that retraining on fresh labelled data repairs.
 * `shiftAffectsLabel: true` shifts before labelling instead (pure covariate shift).
 *
 * @example
 * const rows = makeTabularRows({ n: 2000, seed: 1 });
 * const drifted = makeTabularRows({ n: 500, seed: 2, shift: { f0: 2 } });
 * await writeFile('train.csv', tabularToCsv(rows));
 */
import { readFile, writeFile } from 'node:fs/promises';
import { Rng } from './random.ts';

export const FEATURES = ['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7'] as const;
export type FeatureName = (typeof FEATURES)[number];
export const TABULAR_LABELS = ['low', 'medium', 'high'] as const;
export type TabularLabel = (typeof TABULAR_LABELS)[number];
export const REGIONS = ['north', 'south'] as const;
export type Region = (typeof REGIONS)[number];

export type TabularRow = Record<FeatureName, number> & {
  /** Not a model input; absent in CSVs that have no region column. */
  region?: Region;
  label: TabularLabel;
};

export interface TabularOptions {
  n: number;
  seed: number;
  /** Feature → number of that feature's population standard deviations to add. */
  shift?: Partial<Record<FeatureName, number>>;
  /** Shift before labelling (covariate shift) instead of after (sensor offset). Default false. */
  shiftAffectsLabel?: boolean;
}

/**
 * Population mean and std of each feature in the north region (the generator's parameters). Uniform
 * features use the uniform's mean and std. The `shift` option is expressed in these stds.
 */
export const FEATURE_STATS: Record<FeatureName, { mean: number; std: number }> = {
  f0: { mean: 20, std: 5 }, // temperature-like
  f1: { mean: 0, std: 1 },
  f2: { mean: 50, std: 100 / Math.sqrt(12) }, // uniform 0…100
  f3: { mean: 1000, std: 200 }, // pressure-like
  f4: { mean: 0.05, std: 0.02 }, // small-scale reading
  f5: { mean: 3, std: 2 },
  f6: { mean: -10, std: 4 },
  f7: { mean: 0.5, std: 1 / Math.sqrt(12) }, // uniform 0…1
};

const SOUTH_F0_OFFSET = 2;
// Thresholds on the score chosen so the classes are roughly balanced (≈ 1/3 each overall).
const LOW_BELOW = -0.6;
const HIGH_ABOVE = 0.7;

/** Rounded to 6 significant digits, so a row survives a CSV round trip unchanged. */
function r6(v: number): number {
  return Number(v.toPrecision(6));
}

export function makeTabularRows(opts: TabularOptions): TabularRow[] {
  const rng = new Rng(opts.seed);
  const S = FEATURE_STATS;
  const rows: TabularRow[] = [];
  for (let i = 0; i < opts.n; i++) {
    const region: Region = rng.next() < 0.5 ? 'north' : 'south';
    const f: Record<FeatureName, number> = {
      f0: rng.normal(S.f0.mean, S.f0.std) + (region === 'south' ? SOUTH_F0_OFFSET : 0),
      f1: rng.normal(S.f1.mean, S.f1.std),
      f2: rng.uniform(0, 100),
      f3: rng.normal(S.f3.mean, S.f3.std),
      f4: rng.normal(S.f4.mean, S.f4.std),
      f5: rng.normal(S.f5.mean, S.f5.std),
      f6: rng.normal(S.f6.mean, S.f6.std),
      f7: rng.uniform(0, 1),
    };
    const noise = rng.normal(0, 0.08);
    if (opts.shiftAffectsLabel) applyShift(f, opts.shift);
    const label = labelOf(score(f) + noise);
    if (!opts.shiftAffectsLabel) applyShift(f, opts.shift);
    const row = { region, label } as TabularRow;
    for (const name of FEATURES) row[name] = r6(f[name]);
    rows.push(row);
  }
  return rows;
}

function applyShift(f: Record<FeatureName, number>, shift: TabularOptions['shift']): void {
  if (!shift) return;
  for (const [name, k] of Object.entries(shift) as Array<[FeatureName, number]>) {
    if (!(name in FEATURE_STATS)) throw new Error(`unknown feature in shift: ${name}`);
    f[name] += k * FEATURE_STATS[name].std;
  }
}

function score(f: Record<FeatureName, number>): number {
  const z = (k: FeatureName) => (f[k] - FEATURE_STATS[k].mean) / FEATURE_STATS[k].std;
  const z3 = z('f3');
  return z('f0') + 0.6 * z('f2') + 0.8 * (z3 * z3 - 1) + 0.7 * (Math.abs(z('f1')) - 0.8);
}

function labelOf(s: number): TabularLabel {
  return s < LOW_BELOW ? 'low' : s > HIGH_ABOVE ? 'high' : 'medium';
}

/** Row-major float32 feature matrix [n, 8] in FEATURES order (the model's `features` input). */
export function featureMatrix(rows: readonly TabularRow[]): Float32Array {
  const out = new Float32Array(rows.length * FEATURES.length);
  rows.forEach((row, i) => FEATURES.forEach((name, j) => (out[i * FEATURES.length + j] = row[name])));
  return out;
}

/** Class indices (0 low, 1 medium, 2 high). */
export function labelIndices(rows: readonly TabularRow[]): Int32Array {
  return Int32Array.from(rows, (r) => TABULAR_LABELS.indexOf(r.label));
}

const HEADER = [...FEATURES, 'region', 'label'];

/** CSV with a header row: f0,…,f7,region,label. */
export function tabularToCsv(rows: readonly TabularRow[]): string {
  const lines = [HEADER.join(',')];
  for (const r of rows) lines.push([...FEATURES.map((k) => String(r[k])), r.region ?? '', r.label].join(','));
  return lines.join('\n') + '\n';
}

/**
 * Parses a CSV with a header row naming at least f0…f7 and label (columns in any order; extra
 * columns ignored; region optional). Throws with the line number on a bad value.
 */
export function parseTabularCsv(text: string): TabularRow[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new Error('empty CSV: expected a header row');
  const header = lines[0].split(',').map((h) => h.trim());
  const col = (name: string) => header.indexOf(name);
  for (const name of [...FEATURES, 'label']) {
    if (col(name) < 0) throw new Error(`CSV header lacks column "${name}"`);
  }
  const regionCol = col('region');
  return lines.slice(1).map((line, i) => {
    const cells = line.split(',').map((c) => c.trim());
    const where = `line ${i + 2}`;
    const label = cells[col('label')] as TabularLabel;
    if (!TABULAR_LABELS.includes(label)) throw new Error(`${where}: unknown label "${label}"`);
    const row = { label } as TabularRow;
    for (const name of FEATURES) {
      const v = Number(cells[col(name)]);
      if (cells[col(name)] === '' || !Number.isFinite(v)) throw new Error(`${where}: ${name} is not a number`);
      row[name] = v;
    }
    if (regionCol >= 0 && cells[regionCol]) {
      const region = cells[regionCol] as Region;
      if (!REGIONS.includes(region)) throw new Error(`${where}: unknown region "${region}"`);
      row.region = region;
    }
    return row;
  });
}

export async function writeTabularCsv(path: string, rows: readonly TabularRow[]): Promise<void> {
  await writeFile(path, tabularToCsv(rows));
}

export async function readTabularCsv(path: string): Promise<TabularRow[]> {
  return parseTabularCsv(await readFile(path, 'utf8'));
}
